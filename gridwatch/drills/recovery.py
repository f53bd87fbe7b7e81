"""The worker-restart drill, and what it and the recovery tests read: what a restarted
stream worker reports, where its local table state lives, and what it holds.

A worker reports to InfluxDB (measurement ``pipeline``, stage=streams, instance
``{host}-{pid}``) only once Faust has recovered every table from its changelog; the
report carries how long that took (``recovered_s``), the changelog records each table
read back (``replayed_*``) and its rows (``rows_*``).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from gridwatch.demo import DemoProcs
from gridwatch.drills import Checks, DrillContext, DrillResult, drill
from gridwatch.drills.harness import (
    alive,
    check_every_reading,
    published_messages,
    restart_worker,
    run_storm,
    wait_forwarded,
)
from gridwatch.influx import query, rows
from gridwatch.kafka import all_topics, consumer_lag, partitions_of
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


async def changelog_records(settings: Settings) -> dict[str, int]:
    """Records in each table's changelog (end offsets summed over partitions), by table."""
    from aiokafka import AIOKafkaConsumer

    k = settings.kafka
    prefix, suffix = f"{k.streams_group}-", "-changelog"
    consumer = AIOKafkaConsumer(bootstrap_servers=k.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if t.startswith(prefix) and t.endswith(suffix)]
        found: dict[str, int] = {}
        for topic in sorted(topics):
            parts = await partitions_of(consumer, topic)
            ends = await consumer.end_offsets(parts) if parts else {}
            found[topic.removeprefix(prefix).removesuffix(suffix)] = sum(ends.values())
        return found
    finally:
        await consumer.stop()


def recovery_errors(child: Child) -> int:
    """Lines of Faust's "Error in recovery" (a changelog record it could not apply)."""
    try:
        text = child.log_path.read_text(errors="replace")
    except OSError:
        return 0
    return sum("Error in recovery" in line for line in text.splitlines())


# -- the drill ---------------------------------------------------------------------------

# The storm publishes ≈ 7,000 messages: the worker is stopped after these many (once it
# has stored everything published so far) and started again this many messages later.
STOP_AT = {"restart": 2000, "state-deleted": 4500}
DOWN_FOR_MESSAGES = 500
RECOVER_WITHIN_S = 60.0
CATCH_UP_WITHIN_S = 60.0


@drill(
    "worker-restart",
    "a stream worker stopped (SIGTERM) mid-storm once it has written changelog records "
    "for every table, started again 500 messages later; then again with its local table "
    "state deleted (every table rebuilt from the changelog alone): each time it recovers "
    f"within {RECOVER_WITHIN_S:.0f} s with no 'Error in recovery', every table back with "
    f"all its rows, consumer lag 0 within {CATCH_UP_WITHIN_S:.0f} s, and every published "
    "reading is in InfluxDB exactly once per (device, time)",
)
def worker_restart(ctx: DrillContext) -> DrillResult:
    settings = ctx.settings
    checks = Checks()
    phases: dict[str, dict[str, Any]] = {}
    pending: list[str] = list(STOP_AT)
    down: dict[str, int] = {}  # phase → published when stopped

    def caught_up(procs: DemoProcs, published: int) -> None:
        """Until Kafka holds every published message and the worker has stored it."""
        wait_forwarded(settings, published)
        wait_until(
            lambda: alive(procs.pool[0]) and reading_lag(settings) == 0,
            CATCH_UP_WITHIN_S,
            interval_s=0.5,
            what="the worker to catch up before the stop",
        )

    def stop(phase: str, published: int, procs: DemoProcs) -> None:
        caught_up(procs, published)
        worker = procs.pool[0]
        before = worker_report(settings, worker) or {}
        started = time.monotonic()
        code = worker.stop(timeout_s=30)
        figures = phases[phase] = {
            "stopped_after_messages": published,
            "stop_s": round(time.monotonic() - started, 2),
            "exit_code": code,
            "rows_before": table_fields(before, "rows_"),
            "changelog_records": asyncio.run(changelog_records(settings)),
        }
        if phase == "state-deleted":
            figures["slots_deleted"] = len(delete_local_state(settings))
        down[phase] = published

    def restart(phase: str, published: int, procs: DemoProcs) -> None:
        figures = phases[phase]
        restart_worker(procs, 0, f"streams-{phase}")
        worker = procs.pool[0]
        started = time.monotonic()
        figures["lag_at_restart"] = reading_lag(settings)
        report = wait_recovered(settings, worker, RECOVER_WITHIN_S)
        figures["recovered_s"] = report["recovered_s"]
        figures["replayed"] = table_fields(report, "replayed_")
        figures["rows_after"] = table_fields(report, "rows_")
        wait_until(
            lambda: alive(worker) and reading_lag(settings) == 0,
            CATCH_UP_WITHIN_S,
            interval_s=0.5,
            what=f"lag 0 after the {phase}",
        )
        figures["lag_zero_after_restart_s"] = round(time.monotonic() - started, 2)
        figures["recovery_errors"] = recovery_errors(worker)

    def chaos(published: int, procs: DemoProcs) -> None:
        for phase, at in STOP_AT.items():
            if phase in pending and published >= at and not down:
                pending.remove(phase)
                stop(phase, published, procs)
            elif phase in down and published >= down[phase] + DOWN_FOR_MESSAGES:
                del down[phase]
                restart(phase, published, procs)

    result = run_storm(ctx, chaos, timeout_s=300)
    figures: dict[str, Any] = check_every_reading(checks, settings, result)
    kinds = {kind for kind, _, _ in published_messages(result, settings)}
    for phase in STOP_AT:
        judge(checks, phase, phases.get(phase), kinds)
    figures.update({phase.replace("-", "_"): phases.get(phase, {}) for phase in STOP_AT})
    for phase, f in phases.items():
        key = phase.replace("-", "_")
        figures[f"{key}_recovered_s"] = f.get("recovered_s")
        figures[f"{key}_lag_zero_s"] = f.get("lag_zero_after_restart_s")
        figures[f"{key}_replayed_records"] = sum(f.get("replayed", {}).values())
    return checks.result("worker-restart", "", figures)


def judge(checks: Checks, phase: str, f: dict[str, Any] | None, kinds: set[str]) -> None:
    """What one stop and start must have shown; ``kinds``: the kinds the storm published
    (a table of another kind, ``status-devices`` in this storm, stays empty)."""
    if not checks.require(f is not None and "recovered_s" in f, f"{phase}: never ran to the end"):
        return
    assert f is not None
    written = f["changelog_records"]
    tables = sorted(t for t in f["rows_before"] if t.split("_")[0] in kinds)
    checks.require(
        len(f["rows_before"]) >= 6 and all(written.get(t.replace("_", "-"), 0) > 0 for t in tables),
        f"{phase}: not every table had changelog records before the stop: {written}",
    )
    checks.require(f["exit_code"] not in (None, -9), f"{phase}: the worker had to be killed")
    checks.require(f["recovery_errors"] == 0, f"{phase}: {f['recovery_errors']} recovery errors")
    short = {
        t: (f["rows_after"].get(t, 0), rows)
        for t, rows in f["rows_before"].items()
        if f["rows_after"].get(t, 0) < rows
    }
    checks.require(not short, f"{phase}: tables recovered with fewer rows (after, before): {short}")
    if phase == "state-deleted":
        checks.require(f.get("slots_deleted", 0) > 0, f"{phase}: no local state to delete")
        empty = [t for t in tables if f["replayed"].get(t, 0) < f["rows_before"][t]]
        checks.require(not empty, f"{phase}: tables not rebuilt from the changelog: {empty}")
