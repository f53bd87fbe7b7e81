"""GridWatch streams package."""
