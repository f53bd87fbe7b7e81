"""``gridwatch demo``: the local stack plus a simulated rainstorm, ending in tickets.

1. resets the local stack's data (Kafka is in memory; InfluxDB, broker persistence,
   stream tables and the ticket store under ``var/`` are wiped; credentials are kept);
2. writes the scenario's city to the registry and brings Mosquitto, Kafka and InfluxDB
   up with a login for every device;
3. starts one ingest bridge and one stream worker;
4. replays the scenario (default: the 50-year rainstorm, 3 event hours ending now) over
   MQTT as fast as the broker acknowledges, each device logged in as itself;
5. waits until the stream worker has caught up (consumer lag 0), then prints what
   InfluxDB holds, what was dead-lettered, the tickets raised, and how many flood
   incidents residents complained about had a proactive ticket before the first call.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gridwatch.contracts import DeadLetter, parse_record
from gridwatch.credentials import ensure_credentials
from gridwatch.errors import WaitTimeout
from gridwatch.influx import query, rows
from gridwatch.kafka import all_topics, consumer_lag, read_topic
from gridwatch.procs import Child, wait_until
from gridwatch.scoreboard import score_run
from gridwatch.settings import Settings, load_settings
from gridwatch.stack import Stack
from ingest.cli import ready_file

console = Console()
# measurement → a field every point of it carries
MEASUREMENTS = {
    "water": "qc",
    "rain": "qc",
    "bike": "qc",
    "camera": "qc",
    "status": "qc",
    "assessment": "qc",
    "alert": "probability",
    "ticket": "value",
}


@dataclass
class DemoResult:
    scenario: str
    published: int
    points: dict[str, int]
    dead_letters: dict[str, int]
    tickets: list[dict[str, Any]]
    incidents: list[dict[str, Any]]
    seconds: float
    out_dir: Path
    faults: list[dict[str, Any]] = field(default_factory=list)
    complaints: list[dict[str, Any]] = field(default_factory=list)
    # kind → {device: points in InfluxDB}, and kind → devices simulated
    per_device: dict[str, dict[str, int]] = field(default_factory=dict)
    simulated: dict[str, int] = field(default_factory=dict)
    # messages the broker refused (PUBACK reason → count): a device outside its topics
    refused: dict[str, int] = field(default_factory=dict)


@dataclass
class DemoProcs:
    """The pipeline's child processes during ``run_demo``, handed to a ``chaos`` hook.

    A fault drill may kill an entry and put a replacement in its place (``pool[i]``,
    ``bridge``, ``relay``); ``run_demo`` waits on and stops whatever is there at the end.
    ``publisher`` is the open ``MqttPublisher``: a drill that restarts the MQTT broker
    closes it and puts a fresh one (new connections) in its place, then closes that one.
    """

    settings: Settings
    logs: Path
    bridge: Child
    pool: list[Child]
    relay: Child
    publisher: Any = None


def at_own_time_of_day(scenario: Any, now: datetime | None = None) -> datetime:
    """The most recent past end time at which ``scenario`` runs at the time of day it was
    written for, on a working day if it was written for one (its ``start`` plus its
    duration, moved to an earlier day: at most three days back). Daily patterns
    (commutes, vendors) follow the simulated clock, so a scenario about a weekday evening
    rush replayed to end "now" at 9 a.m. on a Sunday is about a Sunday morning instead."""
    now = now or datetime.now(UTC)
    written = (scenario.start + timedelta(seconds=scenario.duration)).astimezone(UTC)
    end = now.replace(hour=written.hour, minute=written.minute, second=0, microsecond=0, tzinfo=UTC)
    local = timedelta(hours=scenario.utc_offset_h)
    weekend = (written + local).weekday() >= 5
    while end > now or ((end + local).weekday() >= 5) != weekend:
        end -= timedelta(days=1)
    return end


def reset_data(settings: Settings) -> None:
    """Stop the stack and delete its data (not its credentials)."""
    stack = Stack(settings)
    stack.down()
    var = settings.stack.var_dir
    for name in ("influxdb", "mosquitto", "streams", "demo"):
        shutil.rmtree(var / name, ignore_errors=True)
    db = _sqlite_path(settings.tickets.db_url)
    if db is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(url[len(prefix) :]) if url.startswith(prefix) else None


def run_demo(
    settings: Settings,
    scenario: Any,
    *,
    manage_stack: bool = True,
    workers: int = 1,
    timeout_s: float = 300.0,
    out_dir: Path | None = None,
    chaos: Callable[[int, DemoProcs], None] | None = None,
    end: datetime | None = None,
) -> DemoResult:
    """Run ``scenario`` (a ``simulators.scenario.Scenario``) through the pipeline.

    With ``manage_stack`` the local stack is reset and started here; without it (tests)
    the stack is already up and only the scenario's devices are provisioned.
    ``chaos(published, procs)`` is called after every published message (fault
    drills: kill or replace the bridge, a worker or the relay in ``procs``, stop services).
    The scenario's event time ends at ``end`` (default: now; ``at_own_time_of_day`` keeps
    the hour the scenario was written for).
    """
    from simulators.city import generate_city
    from simulators.mqtt_publisher import MqttPublisher
    from simulators.runner import run_scenario

    started = time.monotonic()
    sc = scenario
    end = end or datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(seconds=sc.duration)
    city = generate_city(sc.city.seed, sc.city.size, max_devices=sc.city.max_devices)
    known = {d["device_id"] for d in city.devices}
    stack = Stack(settings)
    if manage_stack:
        reset_data(settings)
        city.write(settings.registry_dir)
        with console.status("starting Mosquitto, Kafka and InfluxDB…"):
            stack.up(device_ids=sorted(known))
    else:
        city.write(settings.registry_dir)
        stack.provision_devices(sorted(known))
    logs = settings.stack.var_dir / "log" / settings.kafka.topic_prefix
    ready = ready_file(settings, settings.mqtt.client_id)
    ready.unlink(missing_ok=True)
    bridge = Child("ingest", ["ingest", "run"], settings, logs).start()
    pool = [
        Child(f"streams-{i}", ["streams", "run"], settings, logs).start() for i in range(workers)
    ]
    # the ticket store's outbox → gw.tickets and InfluxDB 'ticket' (one relay per store)
    relay = Child("tickets-relay", ["tickets", "relay"], settings, logs).start()
    procs = DemoProcs(settings, logs, bridge, pool, relay)
    out_dir = out_dir or settings.stack.var_dir / "demo" / sc.name
    try:
        with console.status("waiting for the bridge to subscribe…"):
            wait_until(lambda: _subscribed(bridge, ready), 60, what="the bridge to subscribe")
        published = 0
        with MqttPublisher(settings) as pub, _progress() as progress:
            procs.publisher = pub
            task = progress.add_task(f"{sc.name} over MQTT", total=sc.duration, info="")

            def send(msg: Any) -> None:
                nonlocal published
                if msg.device_id in known:
                    procs.publisher.publish(msg.topic, msg.payload_bytes())
                    published += 1
                    if chaos is not None:
                        chaos(published, procs)

            def advance(event_s: int) -> None:
                progress.update(task, completed=event_s, info=f"event +{event_s / 60:.0f} min")

            result = run_scenario(sc, out_dir, start=start, on_message=send, progress=advance)
            procs.publisher.flush(timeout_s=120)
            refused = dict(procs.publisher.stats.refused_messages)
        with console.status("waiting for the stream worker to catch up…"):
            _wait_caught_up(settings, procs, timeout_s, "consumer lag 0")
        # The residents' calls, in event time, through gw.complaints: the worker links
        # each to its grid's ticket and records whether it was pre-empted.
        sent = asyncio.run(_send_complaints(settings, result.truth.complaints))
        if sent:
            with console.status(f"filing {sent} simulated 12345 complaints…"):
                _wait_caught_up(settings, procs, timeout_s, "complaints filed", ("complaints",))
        _wait_relay(settings, procs.relay)
        return DemoResult(
            scenario=sc.name,
            published=published,
            points=_points(settings),
            dead_letters=asyncio.run(_dead_letters(settings)),
            tickets=_tickets(settings),
            incidents=[i.to_dict() for i in result.truth.incidents],
            faults=list(result.truth.faults),
            complaints=_complaints(settings),
            per_device=_per_device(settings),
            simulated=_simulated(city.devices),
            refused=refused,
            seconds=time.monotonic() - started,
            out_dir=out_dir,
        )
    finally:
        procs.bridge.stop()
        for worker in procs.pool:
            worker.stop()
        procs.relay.stop()


def _wait_relay(settings: Settings, relay: Child, timeout_s: float = 60.0) -> None:
    """Until every outbox row of the ticket store is published."""
    from sqlalchemy import func, select

    from tickets.db import make_engine, migrate
    from tickets.models import OutboxRow

    engine = make_engine(settings.tickets.db_url)
    migrate(engine)

    def drained() -> bool:
        relay.check_alive()
        with engine.connect() as conn:
            pending = conn.execute(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at.is_(None))
            ).scalar_one()
        return pending == 0

    try:
        wait_until(drained, timeout_s, interval_s=0.5, what="the ticket outbox to drain")
    finally:
        engine.dispose()


def _subscribed(bridge: Child, ready: Path) -> bool:
    bridge.check_alive()
    return ready.exists()


def _wait_caught_up(
    settings: Settings, procs: DemoProcs, timeout_s: float, what: str, topics: tuple[str, ...] = ()
) -> None:
    """Wait until the stream workers' group has no lag on ``topics`` (default: the readings
    and alerts); on timeout say which topics still lag, and by how much."""
    k = settings.kafka
    if topics:
        names = [k.topic(t) for t in topics]
    else:
        names = [t for t in all_topics(k) if ".readings." in t or t.endswith(".alerts")]
    last: dict[str, int] = {}

    def caught_up() -> bool:
        for child in (procs.bridge, *procs.pool):
            child.check_alive()
        last.clear()
        last.update(asyncio.run(consumer_lag(k, k.streams_group, names)))
        return bool(last) and sum(last.values()) == 0

    try:
        wait_until(caught_up, timeout_s, interval_s=1.0, what=what)
    except TimeoutError as exc:
        behind = ", ".join(f"{t} {n}" for t, n in sorted(last.items()) if n) or "no offsets"
        raise WaitTimeout(f"{exc}; still lagging: {behind}") from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _points(settings: Settings) -> dict[str, int]:
    counts: dict[str, int] = {}
    for measurement, field_name in MEASUREMENTS.items():
        series = asyncio.run(
            query(settings.influx, f'SELECT COUNT("{field_name}") FROM "{measurement}"')
        )
        values = rows(series)
        counts[measurement] = int(values[0]["count"]) if values else 0
    return counts


def _per_device(settings: Settings) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind in ("water", "rain", "bike", "camera", "status"):
        found = rows(
            asyncio.run(query(settings.influx, f'SELECT COUNT("qc") FROM "{kind}" GROUP BY device'))
        )
        out[kind] = {str(r["device"]): int(r["count"]) for r in found}
    return out


def _simulated(devices: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for d in devices:
        counts[d["kind"]] = counts.get(d["kind"], 0) + 1
    return counts


async def _dead_letters(settings: Settings) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in await read_topic(settings.kafka, settings.kafka.topic("deadletter")):
        letter = parse_record(DeadLetter, record.value)
        counts[letter.reason.value] = counts.get(letter.reason.value, 0) + 1
    return counts


def _tickets(settings: Settings) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from tickets.db import make_engine, migrate, session_factory
    from tickets.models import Ticket

    engine = make_engine(settings.tickets.db_url)
    try:
        migrate(engine)  # a run that raised nothing may not have created the store yet
        with session_factory(engine)() as s:
            return [
                {
                    "id": t.id,
                    "incident_key": t.incident_key,
                    "category": t.category,
                    "state": t.state,
                    "severity": t.severity,
                    "source": t.source,
                    "created_at": _aware(t.created_at),
                    "closed_at": _aware(t.closed_at) if t.closed_at is not None else None,
                    "why": t.why,
                }
                for t in s.scalars(select(Ticket).order_by(Ticket.created_at))
            ]
    finally:
        engine.dispose()


async def _send_complaints(settings: Settings, complaints: list[Any]) -> int:
    from aiokafka import AIOKafkaProducer

    if not complaints:
        return 0
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        topic = settings.kafka.topic("complaints")
        for c in sorted(complaints, key=lambda c: c.ts):
            await producer.send(
                topic, value=c.model_dump_json().encode(), key=c.complaint_id.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()
    return len(complaints)


def _complaints(settings: Settings) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from tickets.db import make_engine, migrate, session_factory
    from tickets.models import ComplaintRow

    engine = make_engine(settings.tickets.db_url)
    try:
        migrate(engine)
        with session_factory(engine)() as s:
            return [
                {
                    "id": c.id,
                    "category": c.category,
                    "ticket_id": c.ticket_id,
                    "pre_empted": c.pre_empted,
                    "lead_min": c.lead_min,
                }
                for c in s.scalars(select(ComplaintRow))
            ]
    finally:
        engine.dispose()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def print_summary(result: DemoResult, settings: Settings) -> None:
    points = Table(title=f"InfluxDB (database {settings.influx.database!r})")
    points.add_column("measurement")
    points.add_column("points", justify="right")
    for m, n in result.points.items():
        points.add_row(m, f"{n:,}")
    console.print(points)
    devices = Table(title="Devices with points in InfluxDB (per device: devices.csv)")
    for col in ("kind", "simulated", "with points", "points", "fewest / most per device"):
        devices.add_column(col, justify="right" if col != "kind" else "left")
    lines = ["kind,device,points"]
    for kind, per in result.per_device.items():
        counts = list(per.values())
        spread = f"{min(counts)} / {max(counts)}" if counts else "-"
        devices.add_row(
            kind, str(result.simulated.get(kind, 0)), str(len(per)), f"{sum(counts):,}", spread
        )
        lines += [f"{kind},{device},{n}" for device, n in sorted(per.items())]
    console.print(devices)
    result.out_dir.mkdir(parents=True, exist_ok=True)
    (result.out_dir / "devices.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tickets = Table(title=f"Tickets raised ({len(result.tickets)})")
    for col in ("incident", "state", "raised", "why now"):
        tickets.add_column(col, overflow="fold")
    for t in result.tickets[:15]:
        tickets.add_row(
            t["incident_key"], t["state"], t["created_at"].strftime("%H:%M"), t["why"][:60]
        )
    if len(result.tickets) > 15:
        tickets.add_row(f"… {len(result.tickets) - 15} more", "", "", "")
    console.print(tickets)
    dead = ", ".join(f"{k}: {v}" for k, v in sorted(result.dead_letters.items())) or "none"
    console.print(
        f"published {result.published:,} device messages of {result.scenario} "
        f"in {result.seconds:.0f} s; dead-lettered: {dead}"
        + "".join(f"; refused by the broker ({k}): {v}" for k, v in sorted(result.refused.items()))
    )
    scores = score_run(result.tickets, result.incidents, result.complaints, grids=0, duration_s=0)
    board = Table(title="未诉先办: incidents residents called 12345 about")
    for col in (
        "category",
        "called about",
        "ticket before the first call",
        "median minutes earlier",
        "proactive tickets right",
    ):
        board.add_column(col, justify="left" if col == "category" else "right")
    for c in [*scores.categories.values(), scores.overall]:
        if c.complained or c.proactive_tickets:
            median = c.lead_complaint_min.median
            board.add_row(
                c.category,
                str(c.complained),
                f"{c.preempted} ({c.preemption_rate:.0%})" if c.complained else "-",
                "-" if median is None else f"{median:.0f}",
                f"{c.true_tickets}/{c.proactive_tickets}",
            )
    console.print(board)
    console.print(
        f"Ground truth and messages: {result.out_dir}; tickets: {settings.tickets.db_url}; "
        "the console: `gridwatch tickets serve`."
    )


def demo(
    scenario: Annotated[
        str, typer.Option(help="Shipped scenario name or YAML file.")
    ] = "rainstorm-50y",
) -> None:
    """Reset the local stack, replay a simulated rainstorm through it, print the outcome."""
    from gridwatch.cli import State
    from simulators.scenario import load_scenario

    base = load_settings(State.config)
    ensure_credentials(base.stack.var_dir)
    settings = load_settings(State.config)
    result = run_demo(settings, load_scenario(scenario))
    print_summary(result, settings)
    if result.points.get("water", 0) == 0:
        raise typer.Exit(1)
    console.print("The stack keeps running: `gridwatch stack status`, `gridwatch stack down`.")
