"""GridWatch: settings, contracts, registry, CLI and local stack shared by every stage."""

__version__ = "0.1.0"
