"""Nothing lost without trace, through the bridge against real Mosquitto and Kafka.

* Two different readings of one device at the same time (a JSON reading sent with QoS 2
  and a SenML record): the first reaches Kafka, the second is dead-lettered as
  ``conflict`` naming the earlier value, and the bridge counts it; the same values in
  another format are a duplicate.
* A retained device message is never ingested again when the bridge restarts: the
  bridge subscribes with retain handling 2, and a replay a broker sends anyway (forced
  here with retain handling 0) is dead-lettered as ``retained``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gridwatch.contracts import DeadLetter, ReadingBatch, WaterReading, parse_record
from gridwatch.credentials import device_password
from gridwatch.kafka import read_topic, readings_topic
from gridwatch.procs import wait_until
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from ingest.bridge import Bridge
from ingest.cli import make_decoder
from simulators.mqtt_publisher import MqttPublisher
from tests.integration.pipeline import influx_rows, running

pytestmark = [pytest.mark.integration]


def water_in_kafka(s: Settings) -> list[WaterReading]:
    records = asyncio.run(read_topic(s.kafka, readings_topic(s.kafka, "water")))
    out: list[WaterReading] = []
    for record in records:
        out += [
            r
            for r in parse_record(ReadingBatch, record.value).readings
            if isinstance(r, WaterReading)
        ]
    return out


def letters(s: Settings) -> list[DeadLetter]:
    records = asyncio.run(read_topic(s.kafka, s.kafka.topic("deadletter")))
    return [parse_record(DeadLetter, r.value) for r in records]


def at(ts: datetime) -> Callable[[WaterReading], bool]:
    return lambda r: r.ts == ts


def publish_retained(s: Settings, topic: str, payload: bytes) -> None:
    """Publish one retained QoS 1 message as the topic's device and wait for its PUBACK."""
    device = topic.rsplit("/", 1)[1]
    assert s.sim.device_secret is not None
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"ret-{device}", protocol=MQTTProtocolVersion.MQTTv5
    )
    client.username_pw_set(device, device_password(s.sim.device_secret.get_secret_value(), device))
    client.connect(s.mqtt.host, s.mqtt.port)
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(timeout=30)
        assert info.is_published(), f"retained publish to {topic} not acknowledged"
    finally:
        client.disconnect()
        client.loop_stop()


def reading(ts: datetime, level: float, seq: int) -> bytes:
    return json.dumps({"ts": ts.isoformat(), "level_cm": level, "seq": seq}).encode()


def test_a_conflicting_reading_is_dead_lettered_and_counted_not_overwritten(
    settings: Settings, registry: Registry
) -> None:
    device = registry.devices_of("water")[1].device.device_id
    topic = f"gw/v1/water/{device}"
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    later = ts + timedelta(seconds=30)
    bn = f"urn:dev:gw:{device}:"
    same = [{"bn": bn, "bt": ts.timestamp(), "n": "level", "u": "m", "v": 0.032}]
    other = [{"bn": bn, "bt": ts.timestamp(), "n": "level", "u": "cm", "v": 41.5}]
    pack = [*other, {"n": "level", "u": "cm", "v": 5.0, "t": 30}]  # one conflict, one new

    with running(settings, workers=0) as children:
        with MqttPublisher(settings) as pub:
            pub.publish(topic, reading(ts, 3.2, 1), qos=2)
            pub.flush(30)
            wait_until(lambda: any(map(at(ts), water_in_kafka(settings))), 30, what="reading")
            for body in (same, other, pack):
                pub.publish(topic, json.dumps(body).encode())
            pub.flush(30)

        def three_letters() -> list[DeadLetter] | None:
            found = letters(settings)
            return found if len(found) >= 3 else None

        found = wait_until(three_letters, 30, what="three dead letters")
        wait_until(lambda: any(map(at(later), water_in_kafka(settings))), 30, what="new reading")
        children["bridges"][0].check_alive()

    assert [d.reason.value for d in found] == ["duplicate", "conflict", "conflict"]
    assert all(d.device_id == device and d.topic == topic for d in found)
    assert found[1].raw == json.dumps(other).encode()
    assert "level_cm 41.5 (earlier 3.2)" in found[1].detail
    assert "level_cm 41.5 (earlier 3.2)" in found[2].detail
    stored = water_in_kafka(settings)
    assert [r.level_cm for r in stored if r.ts == ts] == [3.2]  # never overwritten
    assert [r.level_cm for r in stored if r.ts == later] == [5.0]  # the pack's new reading
    # the bridge's final counters (written on its clean stop) say why
    counted = {
        row["reason"]: row["last"]
        for row in influx_rows(
            settings,
            "SELECT LAST(dead_lettered) FROM pipeline WHERE stage='ingest' GROUP BY reason",
        )
        if row.get("reason")  # the untagged series holds the total
    }
    assert counted == {"duplicate": 1, "conflict": 2}


def test_a_retained_reading_is_ingested_once_across_bridge_restarts(
    settings: Settings, registry: Registry
) -> None:
    """The service bridge (retain handling 2): a retained reading published before any
    bridge session is never replayed to it; one published while the bridge runs is
    ingested once, live, and not again at each of two restarts."""
    devices = [p.device.device_id for p in registry.devices_of("water")[2:4]]
    before, during = (f"gw/v1/water/{d}" for d in devices)
    marker = f"gw/v1/water/{registry.devices_of('water')[4].device.device_id}"
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    publish_retained(settings, before, reading(ts, 1.5, 1))
    try:
        for run in range(3):
            with running(settings, workers=0) as children, MqttPublisher(settings) as pub:
                if run == 0:
                    publish_retained(settings, during, reading(ts, 2.5, 1))
                # A live marker published after the bridge subscribed: once it is in
                # Kafka, any replay the broker sent at SUBSCRIBE was handled before it.
                mark_ts = ts + timedelta(seconds=run + 1)
                pub.publish(marker, reading(mark_ts, 0.5, run))
                pub.flush(30)
                wait_until(
                    lambda t=mark_ts: any(map(at(t), water_in_kafka(settings))),
                    30,
                    what=f"marker of run {run}",
                )
                children["bridges"][0].check_alive()
    finally:
        for topic in (before, during):
            publish_retained(settings, topic, b"")  # clears the broker's retained copy
    stored = water_in_kafka(settings)
    by_device: dict[str, int] = {}
    for r in stored:
        if r.ts == ts:
            by_device[r.device_id] = by_device.get(r.device_id, 0) + 1
    assert by_device == {devices[1]: 1}  # the live one once; the older retained one never
    marker_device = marker.rsplit("/", 1)[1]
    assert sorted(r.seq for r in stored if r.device_id == marker_device) == [0, 1, 2]
    assert [d.reason.value for d in letters(settings)] == []  # nothing was replayed at all


def test_a_replayed_retained_message_is_dead_lettered_at_every_reconnect(
    settings: Settings, registry: Registry
) -> None:
    """A broker that replays retained messages at SUBSCRIBE (forced here with retain
    handling 0, as the bridge subscribed before): the replay carries the retain flag and
    is refused as ``retained``, each time; the live copy was ingested exactly once."""
    device = registry.devices_of("water")[5].device.device_id
    topic = f"gw/v1/water/{device}"
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    old, live = reading(ts, 6.0, 1), reading(ts + timedelta(seconds=1), 7.0, 2)
    publish_retained(settings, topic, old)
    client_id = f"{settings.mqtt.client_id}-replay"
    retained_counts: list[int] = []

    async def bridge_run(publish_live: bool) -> None:
        bridge = Bridge(
            settings, make_decoder(settings, registry), client_id=client_id, retain_handling=0
        )
        task = asyncio.create_task(bridge.run())

        async def until(ok: Callable[[], Any], what: str) -> None:
            deadline = time.monotonic() + 60
            while not ok():
                if task.done():
                    task.result()  # the bridge failed: raise its error
                    raise AssertionError(f"bridge stopped before {what}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"timed out waiting for {what}")
                await asyncio.sleep(0.05)

        try:
            await until(lambda: bridge.metrics.dead_letters["retained"] >= 1, "the replay")
            if publish_live:
                await asyncio.to_thread(publish_retained, settings, topic, live)
                await until(lambda: bridge.metrics.forwarded >= 1, "the live copy")
            retained_counts.append(bridge.metrics.dead_letters["retained"])
        finally:
            bridge.stopping.set()
            await task

    try:
        asyncio.run(bridge_run(publish_live=True))
        asyncio.run(bridge_run(publish_live=False))
    finally:
        publish_retained(settings, topic, b"")
    assert retained_counts == [1, 1]
    found = letters(settings)
    assert [(d.reason.value, d.raw, d.topic) for d in found] == [
        ("retained", old, topic),  # the first subscription's replay
        ("retained", live, topic),  # the reconnect's replay of the newest retained copy
    ]
    stored = [r for r in water_in_kafka(settings) if r.device_id == device]
    assert [(r.level_cm, r.seq) for r in stored] == [(7.0, 2)]  # live, once
