"""Fixtures for the ticket store against real SQLite files and a real PostgreSQL server.

PostgreSQL is reached at ``GW_TEST_PG_URL`` (default the local trust-auth server); each
test database gets a unique name and is dropped afterwards. When the server cannot be
reached the tests fail — they never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from tickets_testlib import Clock, create_pg_database, drop_pg_database

from gridwatch.registry import Registry
from simulators.city import generate_city
from tickets.config import TicketsConfig
from tickets.db import make_engine, migrate
from tickets.service import TicketService


@pytest.fixture(scope="session")
def registry() -> Registry:
    return generate_city(42, "small").registry()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tickets.db'}"
        return
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> TicketsConfig:
    return TicketsConfig(db_url=db_url, var_dir=tmp_path / "var")


@pytest.fixture
def service(
    engine: Engine, config: TicketsConfig, registry: Registry, clock: Clock
) -> TicketService:
    return TicketService(engine, config, registry, clock=clock)
