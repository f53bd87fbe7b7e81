"""Recovery of a stream worker's tables: what a restarted worker reports, where its
local table state lives, and what it holds.

A worker reports to InfluxDB (measurement ``pipeline``, stage=streams, instance
``{host}-{pid}``) only once Faust has recovered every table from its changelog; the
report carries how long that took (``recovered_s``), the changelog records each table
read back (``replayed_*``) and its rows (``rows_*``).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from pathlib import Path
from typing import Any

from gridwatch.influx import query, rows
from gridwatch.kafka import all_topics, consumer_lag
from gridwatch.procs import Child, wait_until
from gridwatch.settings import Settings
from streams.tables import OFFSET_KEY, table_dbs


def instance_of(child: Child) -> str:
    """The ``instance`` tag of a worker's ``pipeline`` points (``streams.app``)."""
    return f"{socket.gethostname()}-{child.pid}"


def worker_report(settings: Settings, child: Child) -> dict[str, Any] | None:
    """The newest ``pipeline`` point the worker ``child`` wrote, or None."""
    q = (
        "SELECT * FROM pipeline WHERE stage='streams' "
        f"AND instance='{instance_of(child)}' ORDER BY time DESC LIMIT 1"
    )
    found = rows(asyncio.run(query(settings.influx, q)))
    return found[0] if found else None


def wait_recovered(settings: Settings, child: Child, timeout_s: float) -> dict[str, Any]:
    """Wait until the worker ``child`` reports its tables recovered; its report."""

    def recovered() -> dict[str, Any] | None:
        child.check_alive()
        report = worker_report(settings, child)
        return report if report and report.get("recovered_s") is not None else None

    report: dict[str, Any] = wait_until(
        recovered, timeout_s, interval_s=0.5, what=f"{child.name} to recover its tables"
    )
    return report


def reading_lag(settings: Settings) -> int:
    """Readings records the stream workers' group has not yet committed (all kinds)."""
    k = settings.kafka
    topics = [t for t in all_topics(k) if ".readings." in t]
    lag = asyncio.run(consumer_lag(k, k.streams_group, topics))
    return sum(lag.values()) if lag else -1


def table_fields(report: dict[str, Any], prefix: str) -> dict[str, int]:
    """``rows_*`` or ``replayed_*`` of a worker report, by table (``water_sites``)."""
    return {
        name.removeprefix(prefix): int(value)
        for name, value in report.items()
        if name.startswith(prefix) and value is not None
    }


def slot_dirs(settings: Settings) -> list[Path]:
    """The data slots (``streams.app.claim_slot``) of the settings' consumer group."""
    root = (settings.stack.var_dir / "streams").resolve() / settings.kafka.streams_group
    return sorted(p for p in root.glob("worker-*") if p.is_dir())


def delete_local_state(settings: Settings) -> list[Path]:
    """Delete every local table store of the consumer group (its workers stopped)."""
    gone = slot_dirs(settings)
    for path in gone:
        shutil.rmtree(path)
    return gone


def table_snapshot(settings: Settings) -> dict[str, dict[bytes, bytes]]:
    """Every table's raw rows in the group's RocksDB stores (workers stopped), by table,
    without Faust's offset bookkeeping."""
    from rocksdict import AccessType, Options, Rdict

    out: dict[str, dict[bytes, bytes]] = {}
    for slot in slot_dirs(settings):
        for table, _, path in table_dbs(slot):
            db = Rdict(
                str(path), options=Options(raw_mode=True), access_type=AccessType.read_only()
            )
            try:
                found = out.setdefault(table, {})
                # raw mode: keys and values are the bytes Faust stored
                found.update((bytes(k), v) for k, v in db.items() if k != OFFSET_KEY)  # type: ignore[arg-type]
            finally:
                db.close()
    return out
