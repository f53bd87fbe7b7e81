"""Helpers shared by the ticket integration tests (alerts, complaints, clock, PostgreSQL)."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import uvicorn
from fastapi import FastAPI

from gridwatch.contracts import Alert, Category, Complaint, Severity, incident_key
from tickets.config import TicketsConfig

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
GRID = "D01-S01-G01"
TOKENS = {"viewer": "tok-viewer-1", "operator": "tok-operator-1", "admin": "tok-admin-1"}
OPEN311_KEY = "o311-key-1"


def api_config(base: TicketsConfig) -> TicketsConfig:
    """``base`` with the test tokens and Open311 key."""
    return base.model_copy(
        update={
            "tokens": tuple(
                TicketsConfig.model_validate(
                    {"tokens": [{"name": f"dev-{r}", "role": r, "token": t}]}
                ).tokens[0]
                for r, t in TOKENS.items()
            ),
            "open311_api_keys": TicketsConfig.model_validate(
                {"open311_api_keys": [OPEN311_KEY]}
            ).open311_api_keys,
        }
    )


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """``app`` served by a real uvicorn on a free port, in a thread: its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        assert thread.is_alive(), "uvicorn stopped while starting"
        time.sleep(0.02)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> datetime:
        self.now += timedelta(**kw)
        return self.now


def create_pg_database(admin_url: str) -> tuple[str, str]:
    """A uniquely named database on the server of ``admin_url``: (name, its URL)."""
    name = f"gw_tickets_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def drop_pg_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_alert(
    alert_id: str,
    kind: str = "observed",
    *,
    severity: str = "minor",
    category: str = "waterlogging",
    grid: str = GRID,
    site: str | None = "site-a",
    minutes: float = 0,
    probability: float = 1.0,
    evidence: dict | None = None,
    rule_version: str = "rule-1",
    lon: float | None = None,
    lat: float | None = None,
) -> Alert:
    return Alert(
        alert_id=alert_id,
        incident_key=incident_key(grid, category, site),
        kind=kind,  # type: ignore[arg-type]
        category=Category(category),
        severity=Severity(severity),
        grid_id=grid,
        district_id="D01",
        site=site,
        ts=T0 + timedelta(minutes=minutes),
        probability=probability,
        expected_at=T0 + timedelta(minutes=minutes + 30) if kind == "forecast" else None,
        why=f"{kind} test alert",
        evidence=evidence if evidence is not None else {},
        rule_version=rule_version,
        lon=lon,
        lat=lat,
    )


def make_complaint(
    complaint_id: str,
    lon: float,
    lat: float,
    *,
    minutes: float = 0,
    category: str = "waterlogging",
    source: str = "hotline",
) -> Complaint:
    return Complaint(
        complaint_id=complaint_id,
        ts=T0 + timedelta(minutes=minutes),
        category=Category(category),
        lon=lon,
        lat=lat,
        description="积水 water on the road",
        source=source,  # type: ignore[arg-type]
    )
