"""GridWatch tickets package."""
