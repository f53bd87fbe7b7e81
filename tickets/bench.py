"""``gridwatch bench tickets``: raise/update throughput and API latency, SQLite and PostgreSQL.

Fixed load: 4 worker threads raise 1,600 alerts over 200 incidents (creates, evidence,
duplicates) one by one, then 1,600 more in batches of 50 (``raise_alerts``), then walk
200 tickets through acknowledge → dispatch → resolve; then 8
concurrent HTTP clients make 800 API reads (queue, list, detail) against a real uvicorn
server. Each backend runs in a fresh database: a temporary SQLite file, and a temporary
PostgreSQL database, on a private cluster started for the run (``gridwatch.pgcluster``) or on
the server named by ``--db-url``, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from rich.console import Console
from rich.table import Table

from gridwatch.contracts import Alert, Category, Severity, incident_key
from gridwatch.errors import StackError
from gridwatch.pgcluster import PgCluster
from gridwatch.registry import Registry
from tickets.api import create_app
from tickets.config import TicketsConfig
from tickets.db import make_engine, migrate
from tickets.service import TicketService

WORKERS = 4
INCIDENTS = 200
ALERTS = 1600
BATCH = 50
API_CLIENTS = 8
API_REQUESTS = 800
BENCH_TOKEN = "bench-" + uuid.uuid4().hex


def _alerts(grids: list[str], t0: datetime, prefix: str = "b") -> list[Alert]:
    out = []
    for i in range(ALERTS):
        inc = i % INCIDENTS
        grid = grids[inc % len(grids)]
        out.append(
            Alert(
                alert_id=f"{prefix}{i % (ALERTS - 100)}",  # the last 100 are re-deliveries
                incident_key=incident_key(grid, Category.WATERLOGGING, f"s{inc}"),
                kind="observed",
                category=Category.WATERLOGGING,
                severity=Severity.MINOR if i < ALERTS // 2 else Severity.MAJOR,
                grid_id=grid,
                district_id="D01",
                site=f"s{inc}",
                ts=t0 + timedelta(seconds=i),
                evidence={"device_id": "bench", "readings": [{"ts": "t", "value": 1.0}]},
            )
        )
    return out


def _timed(fn: Callable[[Any], Any], items: list[Any]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(fn, items))
    return time.perf_counter() - start


async def _api_load(base: str, ticket_ids: list[str]) -> list[float]:
    paths = ["/api/v1/queue", "/api/v1/tickets?limit=50"] + [
        f"/api/v1/tickets/{t}" for t in ticket_ids[:20]
    ]
    lat: list[float] = []
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as c:

        async def worker(k: int) -> None:
            for i in range(API_REQUESTS // API_CLIENTS):
                t = time.perf_counter()
                r = await c.get(paths[(k + i) % len(paths)])
                r.raise_for_status()
                lat.append((time.perf_counter() - t) * 1000)

        await asyncio.gather(*(worker(k) for k in range(API_CLIENTS)))
    return lat


def _serve(service: TicketService) -> tuple[uvicorn.Server, threading.Thread, str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def bench_backend(db_url: str, registry: Registry) -> dict[str, Any]:
    engine = make_engine(db_url)
    migrate(engine)
    cfg = TicketsConfig.model_validate(
        {"db_url": db_url, "tokens": [{"name": "bench", "role": "admin", "token": BENCH_TOKEN}]}
    )
    service = TicketService(engine, cfg, registry)
    grids = sorted(g.id for g in registry.grids.values() if g.level == "grid")
    alerts = _alerts(grids, datetime.now(UTC) - timedelta(hours=1))
    raise_s = _timed(service.raise_alert, alerts)
    # the stream job's path: batches of 50 in one transaction each (same incidents)
    later = _alerts(grids, datetime.now(UTC) - timedelta(minutes=30), prefix="c")
    batches = [later[i : i + BATCH] for i in range(0, len(later), BATCH)]
    batch_s = _timed(service.raise_alerts, batches)
    with service.read_session() as s:
        from sqlalchemy import select

        from tickets.models import Ticket

        ids = list(s.scalars(select(Ticket.id)))

    def walk(tid: str) -> None:
        service.acknowledge(tid, "bench")
        service.dispatch(tid, "bench")
        service.resolve(tid, "bench", "real")

    update_s = _timed(walk, ids)
    server, thread, base = _serve(service)
    try:
        lat = asyncio.run(_api_load(base, ids))
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()
    q = statistics.quantiles(lat, n=100)
    return {
        "alerts": len(alerts),
        "tickets": len(ids),
        "raise_per_s": round(len(alerts) / raise_s, 1),
        "raise_batched_per_s": round(len(later) / batch_s, 1),
        "updates_per_s": round(3 * len(ids) / update_s, 1),
        "api_requests": len(lat),
        "api_p50_ms": round(q[49], 2),
        "api_p99_ms": round(q[98], 2),
    }


def run_bench(json_path: Path | None, db_url: str | None = None) -> dict[str, Any]:
    """Benchmark SQLite and PostgreSQL (``db_url``: the server to make a temporary DB on;
    without one, a private cluster is started for the run)."""
    from simulators.city import generate_city

    registry = generate_city(42, "small").registry()
    results: dict[str, Any] = {
        "workers": WORKERS,
        "api_clients": API_CLIENTS,
        "backends": {},
    }
    with tempfile.TemporaryDirectory(prefix="gw-tickets-bench-") as tmp:
        results["backends"]["sqlite"] = bench_backend(f"sqlite:///{tmp}/bench.db", registry)
    if db_url is not None:
        results["backends"]["postgresql"] = _bench_postgresql(db_url, registry)
    else:
        try:
            with PgCluster() as cluster:
                results["backends"]["postgresql"] = _bench_postgresql(
                    cluster.url("postgres"), registry
                )
        except StackError as exc:
            results["backends"]["postgresql"] = {"error": str(exc)[:300]}
    _print(results)
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def _bench_postgresql(admin: str, registry: Registry) -> dict[str, Any]:
    """``bench_backend`` in a temporary database on the server of ``admin``."""
    name = f"gw_tickets_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        return {"error": f"cannot reach {admin}: {exc}"[:300]}
    try:
        return bench_backend(f"{admin.rsplit('/', 1)[0]}/{name}", registry)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _print(results: dict[str, Any]) -> None:
    table = Table(
        title="tickets bench",
        caption=(
            f"{results['workers']} writer threads, {results['api_clients']} API clients; "
            f"{ALERTS} alerts per raise column over {INCIDENTS} incidents"
        ),
    )
    cols = ("backend", "raise/s", f"raise/s ×{BATCH}", "updates/s", "API p50 ms", "API p99 ms")
    for col in cols:
        table.add_column(col)
    for name, r in results["backends"].items():
        if "error" in r:
            table.add_row(name, f"[red]{r['error']}[/]", "", "", "", "")
            continue
        table.add_row(
            name,
            str(r["raise_per_s"]),
            str(r["raise_batched_per_s"]),
            str(r["updates_per_s"]),
            str(r["api_p50_ms"]),
            str(r["api_p99_ms"]),
        )
    Console().print(table)
