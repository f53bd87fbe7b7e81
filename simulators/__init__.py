"""GridWatch simulators package."""
