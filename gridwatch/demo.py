"""``gridwatch demo``: the local stack plus a simulated rain pulse, end to end.

Brings the stack up, writes a 20-sensor district into the registry, starts one bridge
and one stream worker, publishes ~30 simulated minutes of water levels over MQTT as
fast as the broker acknowledges them (plus a few invalid messages), waits until
InfluxDB holds every point, and prints a summary read back from InfluxDB.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from datetime import UTC, datetime, timedelta
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridwatch.contracts import DeadLetter, parse_record
from gridwatch.credentials import ensure_credentials
from gridwatch.influx import query, rows
from gridwatch.kafka import read_topic
from gridwatch.procs import Child, wait_until
from gridwatch.registry import Registry
from gridwatch.settings import Settings, load_settings
from gridwatch.stack import Stack
from ingest.cli import ready_file

console = Console()

INVALID_MESSAGES: tuple[tuple[str, bytes], ...] = (
    ("water/{dev}", b'{"ts": "2026-01-01T00:00:00Z", "level_cm": NaN}'),
    ("water/{dev}", b"not json at all"),
    ("water/{dev}", b'{"ts": "2026-01-01T00:00:00Z", "level_cm": "12"}'),
)


@dataclass
class DemoResult:
    published: int
    stored: int
    dead_letters: dict[str, int]
    per_device: list[dict[str, object]]
    seconds: float


def write_demo_city(settings: Settings, devices: int) -> Registry:
    from simulators.city import City, generate_city

    city = generate_city(settings.sim.seed, "small")
    water = [d for d in city.devices if d["kind"] == "water"][:devices]
    City(city.grids, water).write(settings.registry_dir)
    return Registry.from_dir(settings.registry_dir)


def run_demo(settings: Settings, *, timeout_s: float = 120.0) -> DemoResult:
    from simulators.mqtt_publisher import MqttPublisher
    from simulators.skeleton import water_messages

    started = time.monotonic()
    registry = write_demo_city(settings, settings.sim.devices)
    stack = Stack(settings)
    with console.status("starting Mosquitto, Tansu and InfluxDB…"):
        stack.up(device_ids=list(registry.devices))
    logs = settings.stack.var_dir / "log"
    ready = ready_file(settings, settings.mqtt.client_id)
    ready.unlink(missing_ok=True)
    bridge = Child("ingest", ["ingest", "run"], settings, logs).start()
    worker = Child("streams", ["streams", "run"], settings, logs).start()
    try:
        devices = [p.device for p in registry.devices.values()]
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(
            minutes=settings.sim.minutes
        )
        messages = list(
            water_messages(
                devices,
                np.random.default_rng(settings.sim.seed),
                start,
                settings.sim.minutes,
                settings.sim.interval_s,
                settings.mqtt.topic_root,
            )
        )
        root = settings.mqtt.topic_root
        invalid = [
            (f"{root}/" + t.format(dev=devices[0].device_id), p) for t, p in INVALID_MESSAGES
        ]
        with console.status("waiting for the bridge to subscribe…"):
            wait_until(lambda: _subscribed(bridge, ready), 30, what="the bridge to subscribe")
        with MqttPublisher(settings) as pub, _progress() as progress:
            task = progress.add_task(
                "publishing over MQTT (QoS 1)", total=len(messages) + len(invalid)
            )
            for topic, payload in [*messages, *invalid]:
                pub.publish(topic, payload)
                progress.advance(task)
            pub.flush(timeout_s=60)
        expected = len(messages)

        def stored() -> int:
            bridge.check_alive()
            worker.check_alive()
            return _count(settings)

        with console.status("waiting for the stream worker to store every point…"):
            wait_until(
                lambda: stored() >= expected, timeout_s, interval_s=0.5, what="points in InfluxDB"
            )
        dead = asyncio.run(_dead_letters(settings))
        per_device = _per_device(settings)
        return DemoResult(expected, _count(settings), dead, per_device, time.monotonic() - started)
    finally:
        bridge.stop()
        worker.stop()


def _subscribed(bridge: Child, ready: Path) -> bool:
    bridge.check_alive()
    return ready.exists()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _count(settings: Settings) -> int:
    series = asyncio.run(query(settings.influx, "SELECT COUNT(level_cm) FROM water"))
    values = rows(series)
    return int(values[0]["count"]) if values else 0


def _per_device(settings: Settings) -> list[dict[str, object]]:
    series = asyncio.run(
        query(
            settings.influx,
            "SELECT COUNT(level_cm) AS points, LAST(level_cm) AS latest, MAX(level_cm) AS peak"
            " FROM water GROUP BY device, grid",
        )
    )
    return sorted(rows(series), key=lambda r: str(r["device"]))


async def _dead_letters(settings: Settings) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in await read_topic(settings.kafka, settings.kafka.topic("deadletter")):
        letter = parse_record(DeadLetter, record.value)
        counts[letter.reason.value] = counts.get(letter.reason.value, 0) + 1
    return counts


def print_summary(result: DemoResult) -> None:
    table = Table(title="Water sensors in InfluxDB (measurement 'water')")
    for col in ("device", "grid", "points", "latest cm", "peak cm"):
        table.add_column(
            col, justify="right" if col in ("points", "latest cm", "peak cm") else "left"
        )
    for row in result.per_device:
        table.add_row(
            str(row["device"]),
            str(row["grid"]),
            str(row["points"]),
            f"{row['latest']:.1f}",
            f"{row['peak']:.1f}",
        )
    console.print(table)
    dead = ", ".join(f"{k}: {v}" for k, v in sorted(result.dead_letters.items())) or "none"
    console.print(
        f"published {result.published} readings, stored {result.stored}; "
        f"dead-lettered ({'gw.deadletter'}): {dead}; took {result.seconds:.1f} s"
    )


def demo(
    devices: Annotated[int, typer.Option(help="Water sensors in the demo district.")] = 20,
    minutes: Annotated[float, typer.Option(help="Simulated minutes.")] = 30.0,
) -> None:
    """Run the whole pipeline once on the local stack and print what InfluxDB holds."""
    from gridwatch.cli import State

    base = load_settings(State.config)
    ensure_credentials(base.stack.var_dir)
    settings = load_settings(State.config, sim={"devices": devices, "minutes": minutes})
    result = run_demo(settings)
    print_summary(result)
    if result.stored < result.published or len(result.per_device) < devices:
        raise typer.Exit(1)
    console.print("The stack keeps running: `gridwatch stack status`, `gridwatch stack down`.")
