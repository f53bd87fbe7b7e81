"""The Faust application: built from settings, tuned for Kafka, one module per job.

``create_app(settings)`` returns a configured app with every job registered;
``gridwatch streams run`` runs one worker of it. All workers share one consumer group,
so several of them split the partitions between them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from aiokafka.errors import KafkaError

from gridwatch.contracts import DeadLetterReason
from gridwatch.errors import GridWatchError, SinkError
from gridwatch.influx import FieldValue, InfluxWriter, Point
from gridwatch.kafka import all_topics, consumer_lag, readings_topic
from gridwatch.metrics import LatencyWindow
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from streams.bike_scoring import BikeScorer
from streams.camera_scoring import CameraScorer
from streams.camera_scoring import slot_keys as camera_slot_keys
from streams.scored_job import Emitter, register_scored
from streams.sink import Sink, dead_letter
from streams.spool import Spool
from streams.status_scoring import StatusScorer
from streams.tables import check_codecs
from streams.transport import Transport
from streams.views import EvidenceView, RainView

log = logging.getLogger(__name__)


class GridWatchApp(faust.App):
    """faust.App with our Kafka transport (see streams/transport.py)."""

    fetch_max_wait_ms: int = 100

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


@dataclass
class WorkerStats:
    readings: int = 0
    alerts: int = 0
    dead_lettered: int = 0
    sink_retries: int = 0
    sink_rejected: int = 0
    spooled: int = 0
    spool_drained: int = 0
    tickets: dict[str, int] = field(default_factory=dict)
    sink_ms: LatencyWindow = field(default_factory=LatencyWindow)
    partitions: str = ""  # the topic partitions assigned to this worker
    table_rows: dict[str, int] = field(default_factory=dict)
    # seconds from start-up until Faust had recovered every table from its changelog
    # (None until then), and changelog records each table read back (recovery, standby)
    recovered_s: float | None = None
    recovering: bool = False
    replayed: dict[str, int] = field(default_factory=dict)

    def points(self, instance: str, time_ms: int, lag: int | None) -> list[Point]:
        fields: dict[str, FieldValue] = {
            "readings": self.readings,
            "alerts": self.alerts,
            "dead_lettered": self.dead_lettered,
            "sink_retries": self.sink_retries,
            "sink_rejected": self.sink_rejected,
            "spooled": self.spooled,
            "spool_drained": self.spool_drained,
        }
        for action, count in sorted(self.tickets.items()):
            fields[f"tickets_{action}"] = count
        if lag is not None:
            fields["lag"] = lag
        fields["assigned"] = self.partitions.count(":")
        if self.partitions:
            fields["partitions"] = self.partitions
        for name, rows in sorted(self.table_rows.items()):
            fields[f"rows_{name.replace('-', '_')}"] = rows
        if self.recovered_s is not None:
            fields["recovered_s"] = self.recovered_s
        fields["recovering"] = int(self.recovering)
        for name, count in sorted(self.replayed.items()):
            fields[f"replayed_{name.replace('-', '_')}"] = count
        for name, value in self.sink_ms.percentiles().items():
            fields[f"sink_ms_{name}"] = value
        return [Point("pipeline", {"stage": "streams", "instance": instance}, fields, time_ms)]


def register_metrics(app: faust.App, ctx: JobContext, every_s: float = 2.0) -> None:
    """Every few seconds: this worker's counters and the group's consumer lag → InfluxDB
    measurement ``pipeline`` (stage=streams), for the pipeline dashboard."""
    instance = f"{socket.gethostname()}-{os.getpid()}"
    k = ctx.settings.kafka
    topics = [
        t for t in all_topics(k) if ".readings." in t or t.endswith((".alerts", ".complaints"))
    ]

    lag: list[int | None] = [None]
    started = time.monotonic()

    @app.task
    async def tables_recovered() -> None:
        # Faust starts app tasks and timers only once every table has been recovered
        # from its changelog: a worker that never gets here never reports at all
        ctx.stats.recovered_s = round(time.monotonic() - started, 2)
        log.warning(
            "tables recovered seconds=%.2f replayed=%s", ctx.stats.recovered_s, ctx.stats.replayed
        )
        await export()

    @app.timer(3.0)
    async def measure_lag() -> None:
        # a consumer of its own per call: it may take seconds under load, so apart from
        # the counters, which must arrive every few seconds
        try:
            lag[0] = sum((await consumer_lag(k, k.streams_group, topics)).values())
        except (KafkaError, GridWatchError, OSError):
            lag[0] = None

    @app.timer(every_s)
    async def export_metrics() -> None:
        await export()

    async def final_metrics(sender: Any, *args: Any, **kwargs: Any) -> None:
        # the counters as the worker leaves: a short-lived worker still shows its work
        # (the consumer is already stopped: assignment and tables as last measured)
        await export(measure=False)

    # mode's signal stubs want a positional-only sender; the call is the documented one
    app.on_before_shutdown.connect(final_metrics)  # type: ignore[arg-type]

    def measure_assignment() -> None:
        try:
            assigned = app.consumer.assignment()
            ctx.stats.partitions = ",".join(sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))
            ctx.stats.table_rows = {name: len(table) for name, table in app.tables.items()}
            ctx.stats.recovering = bool(app.in_recovery)  # a rebalance's recovery
        except Exception as exc:  # sizes are best effort: the counters still go out
            log.warning("table sizes unavailable error=%r", exc)

    async def export(measure: bool = True) -> None:
        if measure:
            measure_assignment()
        try:
            await ctx.writer.write(
                ctx.stats.points(instance, int(time.time() * 1000), lag[0]), retries=0
            )
        except SinkError as exc:
            log.warning("metrics export failed error=%s", exc)


@dataclass
class JobContext:
    """What every job needs, built once per worker."""

    settings: Settings
    registry: Registry
    writer: InfluxWriter
    deadletter: faust.TopicT
    alerts: faust.TopicT
    assessments: faust.TopicT
    stats: WorkerStats = field(default_factory=WorkerStats)
    sink: Any = None  # streams.sink.Sink, built once the context exists
    storm: Any = None  # streams.rain_scoring.StormPicture, refreshed by the rain job
    emitter: Any = None  # streams.scored_job.Emitter: which assessments go to Kafka
    _tickets: Any = None

    def readings(self, app: faust.App, kind: str) -> faust.TopicT:
        return app.topic(
            readings_topic(self.settings.kafka, kind),
            value_serializer="raw",
            key_serializer="raw",
            partitions=self.settings.kafka.partitions,
        )

    def ticket_service(self) -> Any:
        if self._tickets is None:
            from tickets.service import TicketService

            self._tickets = TicketService.from_url(self.settings.tickets.db_url, self.registry)
        return self._tickets


def _sink(app: faust.App, ctx: JobContext) -> Sink:
    """The worker's batched InfluxDB sink and its three background tasks."""
    influx = ctx.settings.influx

    async def reject(line: str, detail: str) -> None:
        await dead_letter(ctx, line.encode(), "influxdb", DeadLetterReason.SINK_REJECTED, detail)

    sink = Sink(
        ctx.writer,
        Spool(ctx.settings.stack.var_dir / "streams" / "spool", influx.spool_max_mb << 20),
        stats=ctx.stats,
        reject=reject,
        batch_points=influx.batch_points,
        flush_interval_s=influx.flush_interval_ms / 1000,
        max_buffered=influx.max_buffered_points,
    )
    app.task(sink.run_timer)
    app.task(sink.run_writer)
    app.task(sink.run_drain)
    return sink


def claim_slot(root: Path, limit: int = 64) -> tuple[Path, Any]:
    """A data directory no other live worker on this host uses: ``root/worker-<n>`` for
    the lowest ``n`` whose lock file is free (a RocksDB store allows one process). The
    lock is held as long as the returned file object lives; a restarted worker gets its
    old slot back, tables included."""
    root.mkdir(parents=True, exist_ok=True)
    for n in range(limit):
        lock = open(root / f"worker-{n}.lock", "a")  # noqa: SIM115 - held for the process
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return root / f"worker-{n}", lock
    raise GridWatchError(f"{limit} stream workers already hold a data slot under {root}")


def create_app(settings: Settings, *, store: str | None = None) -> GridWatchApp:
    """``store``: a Faust store URL; default from ``kafka.streams_store`` (RocksDB tables
    in a data slot of this worker, or memory)."""
    k = settings.kafka
    root = (settings.stack.var_dir / "streams").resolve()
    datadir, lock = root, None
    if store is None:
        store = "rocksdb://" if k.streams_store == "rocksdb" else "memory://"
    if store.startswith("rocksdb"):
        # per consumer group: another app's tables (other changelogs) never mix in
        datadir, lock = claim_slot(root / k.streams_group)
    app = GridWatchApp(
        k.streams_group,
        broker=";".join(f"kafka://{b.strip()}" for b in k.bootstrap.split(",")),
        store=store,
        datadir=str(datadir),
        topic_partitions=k.partitions,
        topic_replication_factor=k.replication_factor,
        consumer_auto_offset_reset="earliest",
        # Kafka completes a join as soon as every member has joined, so a long rebalance
        # timeout costs nothing at start-up, while a short one (6 s, tuned for Tansu)
        # evicted a worker busy recovering on two loaded cores: rebalances without end.
        broker_rebalance_timeout=60.0,
        broker_session_timeout=30.0,
        broker_heartbeat_interval=1.0,
        broker_request_timeout=30.0,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        producer_linger=0.05,  # fewer, larger produce requests: +20 % measured (Tansu)
        producer_acks=-1,
        stream_wait_empty=False,
        web_enabled=False,
        autodiscover=False,
    )
    app.fetch_max_wait_ms = k.fetch_max_wait_ms
    app.gw_slot_lock = lock  # type: ignore[attr-defined]

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            k.topic(name), value_serializer="raw", key_serializer="raw", partitions=k.partitions
        )

    ctx = JobContext(
        settings=settings,
        registry=Registry.from_dir(settings.registry_dir),
        writer=InfluxWriter(settings.influx),
        deadletter=raw_topic("deadletter"),
        alerts=raw_topic("alerts"),
        assessments=raw_topic("assessments"),
    )
    ctx.sink = _sink(app, ctx)
    ctx.emitter = Emitter()
    from streams import rain_job, ticketing_job, water_job

    rain_view = RainView(settings.kafka)
    evidence = EvidenceView(settings.kafka)
    app.task(rain_view.run)
    app.task(evidence.run)
    rain_job.register(app, ctx, rain_view)
    water_job.register(app, ctx, rain_view, evidence)
    register_scored(app, ctx, "bike", BikeScorer(ctx.registry).score)
    register_scored(app, ctx, "camera", CameraScorer(ctx.registry).score, camera_slot_keys)
    register_scored(app, ctx, "status", StatusScorer(ctx.registry).score)
    ticketing_job.register(app, ctx)
    register_metrics(app, ctx)
    check_codecs(app)
    app.gw_context = ctx  # type: ignore[attr-defined]
    return app
