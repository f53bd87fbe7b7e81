"""The Faust application: built from settings, tuned for Tansu, one module per job.

``create_app(settings)`` returns a configured app with every job registered;
``gridwatch streams run`` runs one worker of it. All workers share one consumer group,
so several of them split the partitions between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import faust

from gridwatch.influx import InfluxWriter
from gridwatch.kafka import readings_topic
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from streams.transport import Transport

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
    tickets: dict[str, int] = field(default_factory=dict)


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


def create_app(settings: Settings, *, store: str = "memory://") -> GridWatchApp:
    k = settings.kafka
    datadir = (settings.stack.var_dir / "streams").resolve()
    app = GridWatchApp(
        k.streams_group,
        broker=f"kafka://{k.bootstrap}",
        store=store,
        datadir=str(datadir),
        topic_partitions=k.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        # Start-up against Tansu: joining takes about half the rebalance timeout.
        broker_rebalance_timeout=6.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_request_timeout=30.0,
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        producer_linger=0.005,
        producer_acks=-1,
        stream_wait_empty=False,
        web_enabled=False,
        autodiscover=False,
    )
    app.fetch_max_wait_ms = k.fetch_max_wait_ms

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
    from streams import readings_job, ticketing_job, water_job

    readings_job.register(app, ctx)
    water_job.register(app, ctx)
    ticketing_job.register(app, ctx)
    app.gw_context = ctx  # type: ignore[attr-defined]
    return app
