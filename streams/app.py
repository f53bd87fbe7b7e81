"""The Faust application: built from settings, tuned for Tansu, one module per job.

``create_app(settings)`` returns a configured app with every job registered;
``gridwatch streams run`` runs one worker of it. All workers share one consumer group,
so several of them split the partitions between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust

from gridwatch.influx import InfluxWriter
from gridwatch.kafka import readings_topic
from gridwatch.settings import Settings
from streams.transport import Transport

log = logging.getLogger(__name__)


class GridWatchApp(faust.App):
    """faust.App with our Kafka transport (see streams/transport.py)."""

    fetch_max_wait_ms: int = 100

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


@dataclass
class JobContext:
    """What every job needs, built once per worker."""

    settings: Settings
    writer: InfluxWriter
    deadletter: faust.TopicT

    def readings(self, app: faust.App, kind: str) -> faust.TopicT:
        return app.topic(
            readings_topic(self.settings.kafka, kind),
            value_serializer="raw",
            key_serializer="raw",
            partitions=self.settings.kafka.partitions,
        )


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
        # Faust's own asyncio/aiohttp extras are not used: keep the worker lean.
        autodiscover=False,
    )
    app.fetch_max_wait_ms = k.fetch_max_wait_ms
    ctx = JobContext(
        settings=settings,
        writer=InfluxWriter(settings.influx),
        deadletter=app.topic(k.topic("deadletter"), value_serializer="raw", key_serializer="raw"),
    )
    from streams import readings_job

    readings_job.register(app, ctx)
    return app
