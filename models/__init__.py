"""GridWatch models package."""
