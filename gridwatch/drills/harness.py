"""What the pipeline drills share: a short storm through ``run_demo`` and the counts that
judge it (published, in Kafka, in InfluxDB, dead-lettered, tickets)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gridwatch.contracts import DeadLetter, ReadingBatch, parse_record
from gridwatch.demo import DemoProcs, DemoResult, run_demo
from gridwatch.drills import Checks, DrillContext
from gridwatch.influx import query, rows
from gridwatch.kafka import read_topic, readings_topic
from gridwatch.procs import Child, wait_until
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from gridwatch.stack import Stack, free_port
from ingest.cli import ready_file
from ingest.timestamps import event_ms

# The storm every pipeline drill replays: 80 minutes of the 50-year rainstorm over 100
# devices (≈ 7,000 messages), device faults off so that every published reading must
# reach InfluxDB (the fault catalogue has its own tests; the clock-skew drill turns its
# fault on).
SCENARIO = "rainstorm-50y"
MINUTES = 80
DEVICES = 100
Chaos = Callable[[int, DemoProcs], None]


def drill_scenario(**faults: float) -> Any:
    from simulators.scenario import FaultSpec, load_scenario

    sc = load_scenario(SCENARIO).with_overrides(duration=f"{MINUTES}min", max_devices=DEVICES)
    return sc.model_copy(update={"faults": FaultSpec(**faults)})


def run_storm(
    ctx: DrillContext,
    chaos: Chaos | None,
    *,
    settings: Settings | None = None,
    scenario: Any = None,
    timeout_s: float = 240,
) -> DemoResult:
    return run_demo(
        settings or ctx.settings,
        scenario if scenario is not None else drill_scenario(),
        manage_stack=False,
        out_dir=ctx.work_dir / "run",
        timeout_s=timeout_s,
        chaos=chaos,
    )


# -- what was published ----------------------------------------------------------------


def published_messages(result: DemoResult, settings: Settings) -> Iterator[tuple[str, str, Any]]:
    """(kind, device, payload) of every message ``run_demo`` published, in publish order
    (the scenario's messages.jsonl, restricted to the registry's devices)."""
    known = set(Registry.from_dir(settings.registry_dir).devices)
    with (result.out_dir / "messages.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            _, _, kind, device = doc["topic"].split("/")
            if device in known:
                yield kind, device, doc.get("payload")


def water_keys(messages: Iterator[tuple[str, str, Any]]) -> list[tuple[str, int]]:
    """(device, event time in ms) of each water message, in publish order."""
    return [
        (device, int(event_ms(payload["ts"])))
        for kind, device, payload in messages
        if kind == "water" and isinstance(payload, dict)
    ]


def per_device(keys: list[tuple[str, int]]) -> Counter[str]:
    return Counter(device for device, _ in set(keys))


# -- what arrived ----------------------------------------------------------------------


def influx_rows(settings: Settings, q: str) -> list[dict[str, Any]]:
    return rows(asyncio.run(query(settings.influx, q)))


def water_in_influx(settings: Settings) -> Counter[str]:
    found = influx_rows(settings, "SELECT COUNT(level_cm) FROM water GROUP BY device")
    return Counter({str(r["device"]): int(r["count"]) for r in found})


def water_times_in_influx(settings: Settings) -> set[tuple[str, int]]:
    found = influx_rows(settings, "SELECT level_cm, device FROM water")
    return {(str(r["device"]), _ms(r["time"])) for r in found}


def _ms(value: Any) -> int:
    from datetime import datetime

    if isinstance(value, int | float):
        return int(value)
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)


def water_in_kafka(settings: Settings) -> tuple[Counter[str], int]:
    """Distinct (device, time) water readings per device in Kafka, and all readings
    there including repeats (at-least-once redeliveries the sink must absorb)."""
    seen: set[tuple[str, int]] = set()
    total = 0
    for record in asyncio.run(read_topic(settings.kafka, readings_topic(settings.kafka, "water"))):
        for r in parse_record(ReadingBatch, record.value).readings:
            seen.add((r.device_id, int(r.ts.timestamp() * 1000)))
            total += 1
    return Counter(device for device, _ in seen), total


def readings_in_kafka(settings: Settings) -> int:
    """Readings of every kind in Kafka (repeats included)."""
    from gridwatch.contracts import KINDS

    async def count() -> int:
        n = 0
        for kind in KINDS:
            for record in await read_topic(settings.kafka, readings_topic(settings.kafka, kind)):
                n += len(parse_record(ReadingBatch, record.value).readings)
        return n

    return asyncio.run(count())


def wait_forwarded(settings: Settings, published: int, timeout_s: float = 60) -> float:
    """Wait until Kafka holds a reading for each of the ``published`` messages (faults
    off: one reading per message); returns how long that took. ``run_demo`` itself only
    waits for consumer lag 0, which does not see messages still held by the MQTT broker."""
    import time

    started = time.monotonic()
    wait_until(
        lambda: readings_in_kafka(settings) >= published,
        timeout_s,
        interval_s=0.5,
        what=f"{published} published messages forwarded to Kafka",
    )
    return time.monotonic() - started


def dead_letters(settings: Settings) -> list[DeadLetter]:
    records = asyncio.run(read_topic(settings.kafka, settings.kafka.topic("deadletter")))
    return [parse_record(DeadLetter, r.value) for r in records]


def double_tickets(result: DemoResult) -> list[tuple[str, Any]]:
    """Incidents with two tickets created at the same instant (one alert, two tickets)."""
    keys = Counter((t["incident_key"], t["created_at"]) for t in result.tickets)
    return [k for k, n in keys.items() if n > 1]


def check_every_reading(
    checks: Checks, settings: Settings, result: DemoResult, what: str = "acknowledged"
) -> dict[str, Any]:
    """Every published water reading is in InfluxDB exactly once per (device, time)."""
    expected = per_device(water_keys(published_messages(result, settings)))
    stored = water_in_influx(settings)
    in_kafka, kafka_total = water_in_kafka(settings)
    missing = sum((expected - stored).values())
    extra = sum((stored - expected).values())
    checks.require(missing == 0, f"{missing} {what} water readings missing from InfluxDB")
    checks.require(extra == 0, f"{extra} water points in InfluxDB beyond the published readings")
    doubles = double_tickets(result)
    checks.require(not doubles, f"duplicate tickets: {doubles[:3]}")
    return {
        "published_messages": result.published,
        "water_published": sum(expected.values()),
        "water_in_kafka": sum(in_kafka.values()),
        "kafka_repeats": kafka_total - sum(in_kafka.values()),
        "water_in_influx": sum(stored.values()),
        "water_missing": missing,
        "water_extra": extra,
        "tickets": len(result.tickets),
        "duplicate_tickets": len(doubles),
        "sink_p99_ms_max": sink_p99_ms(settings),
    }


def sink_p99_ms(settings: Settings) -> float | None:
    """The worst p99 write latency the stream workers reported for their InfluxDB sink."""
    found = influx_rows(settings, "SELECT MAX(sink_ms_p99) FROM pipeline WHERE stage='streams'")
    return round(float(found[0]["max"]), 1) if found else None


# -- process control -------------------------------------------------------------------


def restart_bridge(procs: DemoProcs, name: str, timeout_s: float = 60) -> float:
    """Start a new bridge in ``procs`` (same client id: same persistent session) and
    wait until it is subscribed; returns how long that took."""
    import time

    started = time.monotonic()
    ready = ready_file(procs.settings, procs.settings.mqtt.client_id)
    ready.unlink(missing_ok=True)
    procs.bridge = Child(name, ["ingest", "run"], procs.settings, procs.logs).start()
    bridge = procs.bridge
    wait_until(
        lambda: alive(bridge) and ready.exists(), timeout_s, what="the new bridge subscribed"
    )
    return time.monotonic() - started


def alive(child: Child) -> bool:
    """True, or the child's death as an error (for ``wait_until`` predicates)."""
    child.check_alive()
    return True


def start_worker(procs: DemoProcs, name: str) -> Child:
    """A new stream worker of the run's group (not yet in ``procs.pool``)."""
    return Child(name, ["streams", "run"], procs.settings, procs.logs).start()


def restart_worker(procs: DemoProcs, index: int, name: str) -> None:
    procs.pool[index] = start_worker(procs, name)


class Supervisor:
    """Restarts exited stream workers and/or the relay of a running ``run_demo``, as a
    process manager (systemd ``Restart=always``) would; counts the restarts.

    ``watch(procs)`` from the first chaos call hands it the processes to look after."""

    def __init__(self, *, workers: bool = False, relay: bool = False) -> None:
        import threading

        self.workers = workers
        self.relay = relay
        self.restarts: Counter[str] = Counter()
        self._procs: DemoProcs | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def watch(self, procs: DemoProcs) -> None:
        self._procs = procs

    def __enter__(self) -> Supervisor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._procs is not None:  # run_demo stopped them; anything alive is a leftover
            for child in (*self._procs.pool, self._procs.relay, self._procs.bridge):
                child.stop()

    @staticmethod
    def _crashed(child: Child) -> bool:
        """Exited on its own with an error (not stopped or killed by a signal)."""
        return child.proc is not None and (child.proc.poll() or 0) > 0

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            procs = self._procs
            if procs is None:
                continue
            if self.workers:
                for i, worker in enumerate(list(procs.pool)):
                    if self._crashed(worker):
                        self.restarts["worker"] += 1
                        restart_worker(procs, i, f"streams-restart-{self.restarts['worker']}")
            if self.relay and self._crashed(procs.relay):
                self.restarts["relay"] += 1
                n = self.restarts["relay"]
                procs.relay = Child(
                    f"tickets-relay-restart-{n}", ["tickets", "relay"], procs.settings, procs.logs
                ).start()


def pause(child: Child) -> None:
    """SIGSTOP the child's process group (it keeps its sockets, does nothing)."""
    os.killpg(child.pid, signal.SIGSTOP)


def resume(child: Child) -> None:
    os.killpg(child.pid, signal.SIGCONT)


def log_dir(settings: Settings) -> Path:
    return settings.stack.var_dir / "log" / settings.kafka.topic_prefix


# -- a broker of its own ----------------------------------------------------------------


@contextlib.contextmanager
def own_kafka(ctx: DrillContext, brokers: int = 1) -> Iterator[tuple[Stack, Settings]]:
    """A private Apache Kafka of ``brokers`` brokers (KRaft, on free ports, under the
    drill's directory; with three, topics have three replicas and writes need two);
    yields its stack and the drill's settings pointed at it (Mosquitto and InfluxDB stay
    the shared stack's)."""
    ports = [free_port() for _ in range(2 * brokers)]
    st = ctx.settings.stack.model_copy(
        update={
            "var_dir": ctx.work_dir / "kafka",
            # a broker restarted mid-storm shares two cores with the whole pipeline
            "start_timeout_s": max(ctx.settings.stack.start_timeout_s, 120.0),
            "kafka_brokers": brokers,
            "kafka_controller_ports": tuple(ports[brokers:]),
        }
    )
    kafka_settings = ctx.settings.kafka.model_copy(
        update={
            "bootstrap": ",".join(f"127.0.0.1:{p}" for p in ports[:brokers]),
            "replication_factor": min(3, brokers),
        }
    )
    stack = Stack(ctx.settings.model_copy(update={"stack": st, "kafka": kafka_settings}))
    try:
        stack.up(["kafka"])
        yield stack, ctx.settings.model_copy(update={"kafka": kafka_settings})
    finally:
        stack.down(["kafka"])


async def committed_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """The stream workers' committed offset per (topic, partition) that has one; read by
    a consumer that never joins their group."""
    from aiokafka import AIOKafkaConsumer

    from gridwatch.kafka import partitions_of

    k = settings.kafka
    consumer = AIOKafkaConsumer(
        bootstrap_servers=k.bootstrap, group_id=k.streams_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        found: dict[tuple[str, int], int] = {}
        for topic in topics:
            for tp in await partitions_of(consumer, topic):
                offset = await consumer.committed(tp)
                if offset is not None and offset >= 0:
                    found[(topic, tp.partition)] = offset
        return found
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()
