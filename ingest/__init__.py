"""GridWatch ingest package."""
