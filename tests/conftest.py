"""Shared fixtures: a private real stack on free ports, started once per session.

The stack never touches the developer's running one: its own var directory, its own
ports, its own credentials. It fails loudly (never skips) when a service cannot start.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridwatch.credentials import ensure_credentials
from gridwatch.isolation import isolated
from gridwatch.pgcluster import PgCluster
from gridwatch.registry import Registry
from gridwatch.settings import Settings, load_settings
from gridwatch.stack import Stack, free_port

# Tests build their settings explicitly; a developer's GW_* variables must not leak in.
for _name in [n for n in os.environ if n.startswith("GW_")]:
    del os.environ[_name]


def _stack_settings(var_dir: Path) -> Settings:
    ensure_credentials(var_dir)
    return load_settings(
        stack={
            "var_dir": var_dir,
            "influx_rpc_port": free_port(),
            "start_timeout_s": 60,
            "kafka_controller_ports": (free_port(),),
        },
        mqtt={"port": free_port(), "session_expiry_s": 120},
        kafka={"bootstrap": f"127.0.0.1:{free_port()}"},
        influx={"url": f"http://127.0.0.1:{free_port()}"},
        registry_dir=var_dir / "city",
    )


@pytest.fixture(scope="session")
def test_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simulators.city import generate_city

    directory = tmp_path_factory.mktemp("city")
    generate_city(11, "small").write(directory)
    return directory


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, test_city: Path) -> Iterator[Stack]:
    var_dir = tmp_path_factory.mktemp("gwstack")
    settings = _stack_settings(var_dir)
    (var_dir / "city").symlink_to(test_city)
    registry = Registry.from_dir(test_city)
    stack = Stack(settings)
    try:
        stack.up(device_ids=list(registry.devices))
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """The admin URL of a PostgreSQL server for this session: a private cluster on a free
    port in a temporary directory (``TICKETS_TEST_PG_URL`` points at another server)."""
    configured = os.environ.get("TICKETS_TEST_PG_URL")
    if configured:
        yield configured
        return
    with PgCluster() as pg:
        yield pg.url("postgres")


@pytest.fixture
def settings(stack: Stack) -> Settings:
    """Stack settings with a unique topic prefix, consumer group, MQTT share group and
    InfluxDB database, so tests never see each other's data."""
    return isolated(stack.settings)


@pytest.fixture(scope="session")
def registry(test_city: Path) -> Registry:
    return Registry.from_dir(test_city)


def run(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine from a sync test."""
    return asyncio.run(coro)


def shared_data() -> Path:
    """The real public datasets (../shared/data next to the repository, or /work/shared/data
    on the project machines)."""
    for candidate in (
        Path(__file__).resolve().parents[2] / "shared" / "data",
        Path("/work/shared/data"),
    ):
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/data")
