"""Settings isolated from every other run on the same stack.

A test, a drill or a benchmark case shares the stack's Mosquitto, broker and InfluxDB
with others; ``isolated`` gives it its own topic prefix, consumer group, MQTT client id
and share group, and InfluxDB database (created here), so it never sees their data.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from gridwatch.settings import InfluxSettings, Settings


def create_database(influx: InfluxSettings, name: str) -> None:
    """``CREATE DATABASE`` over the v1 query API (idempotent)."""
    response = httpx.post(
        f"{influx.url}/query", data={"q": f'CREATE DATABASE "{name}"'}, timeout=10
    )
    response.raise_for_status()


def isolated(base: Settings, tag: str | None = None, **updates: Any) -> Settings:
    """``base`` with names of its own, derived from ``tag`` (random by default);
    ``updates`` replace further top-level settings (a ticket store, a registry)."""
    tag = tag or uuid.uuid4().hex[:8]
    db = f"gw_{tag}"
    create_database(base.influx, db)
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={"topic_prefix": f"t{tag}", "streams_group": f"streams-{tag}"}
            ),
            "mqtt": base.mqtt.model_copy(
                update={"share_group": f"g{tag}", "client_id": f"bridge-{tag}"}
            ),
            "influx": base.influx.model_copy(update={"database": db}),
            **updates,
        }
    )
