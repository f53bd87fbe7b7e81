"""Helpers for integration tests that run the bridge and the stream worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from gridwatch.influx import query, rows
from gridwatch.procs import Child, wait_until
from gridwatch.settings import Settings
from ingest.cli import ready_file


@contextmanager
def running(
    settings: Settings, *, bridges: int = 1, workers: int = 1
) -> Iterator[dict[str, list[Child]]]:
    """Start bridges and workers as child processes; wait for the bridges to subscribe."""
    logs = settings.stack.var_dir / "log" / settings.kafka.topic_prefix
    children: dict[str, list[Child]] = {"bridges": [], "workers": []}
    try:
        for i in range(bridges):
            client_id = f"{settings.mqtt.client_id}-{i}"
            ready_file(settings, client_id).unlink(missing_ok=True)
            children["bridges"].append(
                Child(
                    f"bridge-{i}", ["ingest", "run", "--client-id", client_id], settings, logs
                ).start()
            )
        for i in range(workers):
            children["workers"].append(
                Child(f"worker-{i}", ["streams", "run"], settings, logs).start()
            )
        for i, bridge in enumerate(children["bridges"]):
            ready = ready_file(settings, f"{settings.mqtt.client_id}-{i}")
            wait_until(
                lambda b=bridge, r=ready: b.check_alive() or r.exists(),
                60,
                what="bridge subscribed",
            )
        yield children
    finally:
        for group in children.values():
            for child in group:
                child.stop()


def influx_rows(settings: Settings, q: str) -> list[dict]:  # type: ignore[type-arg]
    return rows(asyncio.run(query(settings.influx, q)))


def count_points(settings: Settings, measurement: str, field: str) -> int:
    result = influx_rows(settings, f"SELECT COUNT({field}) FROM {measurement}")
    return int(result[0]["count"]) if result else 0


def wait_for_points(
    settings: Settings,
    measurement: str,
    field: str,
    expected: int,
    children: dict[str, list[Child]],
    timeout_s: float = 90,
) -> int:
    def enough() -> bool:
        for group in children.values():
            for child in group:
                child.check_alive()
        return count_points(settings, measurement, field) >= expected

    wait_until(enough, timeout_s, interval_s=0.5, what=f"{expected} {measurement} points")
    return count_points(settings, measurement, field)
