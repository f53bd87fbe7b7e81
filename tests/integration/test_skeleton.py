"""The walking skeleton against the real stack: MQTT → bridge → Kafka → Faust → InfluxDB."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridwatch.contracts import DeadLetter, parse_record
from gridwatch.kafka import read_topic
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from simulators.mqtt_publisher import MqttPublisher
from simulators.skeleton import water_messages
from tests.integration.pipeline import influx_rows, running, wait_for_points

pytestmark = [pytest.mark.integration]


def test_thousand_readings_arrive_with_values_and_event_times(
    settings: Settings, registry: Registry
) -> None:
    devices = [p.device for p in registry.devices_of("water")][:20]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    messages = list(
        water_messages(devices, np.random.default_rng(5), start, minutes=50, interval_s=60)
    )
    assert len(messages) == 1000
    expected = {}
    for topic, payload in messages:
        body = json.loads(payload)
        ts_ms = int(datetime.fromisoformat(body["ts"]).timestamp() * 1000)
        expected[(topic.rsplit("/", 1)[1], ts_ms)] = body["level_cm"]

    with running(settings) as children:
        with MqttPublisher(settings) as pub:
            for topic, payload in messages:
                pub.publish(topic, payload)
            pub.flush(timeout_s=60)
        stored = wait_for_points(settings, "water", "level_cm", 1000, children)

    assert stored == 1000
    got = {
        (row["device"], row["time"]): row["level_cm"]
        for row in influx_rows(settings, "SELECT level_cm FROM water GROUP BY device")
    }
    assert got == expected
    grids = {
        row["grid"]
        for row in influx_rows(settings, "SELECT COUNT(level_cm) FROM water GROUP BY grid")
    }
    assert grids == {registry.placement(d.device_id).grid_id for d in devices}


@pytest.mark.parametrize(
    ("topic_kind", "payload", "reason"),
    [
        ("water", b'{"ts": "2026-01-01T00:00:00Z", "level_cm": NaN}', "non_finite"),
        ("water", b"{not json", "malformed"),
        ("water", b'{"ts": "2026-01-01T00:00:00Z", "level_cm": "12.5"}', "schema"),
        # (a device's id under another kind's topic is refused by the broker itself)
        (
            "water",
            b'{"ts": "2026-01-01T00:00:00Z", "kind": "rain", "level_cm": 1}',
            "topic_mismatch",
        ),
    ],
    ids=["nan", "not-json", "number-as-string", "payload-names-another-kind"],
)
def test_invalid_messages_are_dead_lettered_with_reason(
    settings: Settings, registry: Registry, topic_kind: str, payload: bytes, reason: str
) -> None:
    device = registry.devices_of("water")[0].device.device_id
    now = datetime.now(UTC).isoformat()
    payload = payload.replace(b"2026-01-01T00:00:00Z", now.encode())
    topic = f"gw/v1/{topic_kind}/{device}"
    with running(settings, workers=0):
        with MqttPublisher(settings) as pub:
            pub.publish(topic, payload)
            pub.flush(timeout_s=30)

        def letters() -> list[DeadLetter]:
            records = asyncio.run(read_topic(settings.kafka, settings.kafka.topic("deadletter")))
            return [parse_record(DeadLetter, r.value) for r in records]

        from gridwatch.procs import wait_until

        found = wait_until(letters, 30, what="a dead letter")
    assert len(found) == 1
    assert found[0].reason.value == reason
    assert found[0].raw == payload
    assert found[0].topic == topic
    assert found[0].device_id == device
