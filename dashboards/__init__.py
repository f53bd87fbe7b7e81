"""GridWatch dashboards package."""
