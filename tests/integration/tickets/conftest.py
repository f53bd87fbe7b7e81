"""Fixtures for the ticket store against real SQLite files and a real PostgreSQL server.

PostgreSQL is the session's private cluster (``pg_admin_url`` in ``tests/conftest.py``);
each test database gets a unique name and is dropped afterwards. When the cluster cannot
start the tests fail — they never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from gridwatch.registry import Registry
from simulators.city import generate_city
from tickets.api import create_app
from tickets.config import TicketsConfig
from tickets.db import make_engine, migrate
from tickets.service import TicketService

from .tickets_testlib import Clock, api_config, create_pg_database, drop_pg_database, live_server

TABLES = (
    "tickets", "evidence", "seen_alerts", "complaints", "audit_log", "outbox", "near_misses",
    "storm_periods", "open311_requests",
)  # fmt: skip


@pytest.fixture(scope="session")
def registry() -> Registry:
    return generate_city(42, "small").registry()


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """One uniquely named PostgreSQL database for the session, migrated once."""
    name, url = create_pg_database(pg_admin_url)
    try:
        eng = make_engine(url)
        migrate(eng)
        eng.dispose()
        yield url
    finally:
        drop_pg_database(pg_admin_url, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store per test: a new SQLite file, or the session's PostgreSQL database
    emptied (cheaper than a database per test on this shared machine)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tickets.db'}"
        return
    url: str = request.getfixturevalue("pg_url")
    eng = make_engine(url)
    migrate(eng)  # a test may have downgraded the schema
    with eng.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    eng.dispose()
    yield url


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


@pytest.fixture
def api_service(service: TicketService, registry: Registry) -> TicketService:
    """The service with the test tokens and Open311 key."""
    return TicketService(service.engine, api_config(service.config), registry, clock=service.clock)


@pytest.fixture
def live_url(api_service: TicketService) -> Iterator[str]:
    """The ticket API over ``api_service``, served by uvicorn on a free port."""
    with live_server(create_app(api_service)) as url:
        yield url
