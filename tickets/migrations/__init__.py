"""Alembic migrations of the ticket store (a package so they ship in the wheel)."""
