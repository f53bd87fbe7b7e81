"""The bridge against real Mosquitto and Kafka: crashes, broker outages, scale-out.

What must hold everywhere: every message a device got a PUBACK for is in Kafka at
least once (counted by device and ``seq``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from gridwatch.contracts import ReadingBatch, parse_record
from gridwatch.kafka import read_topic, readings_topic
from gridwatch.procs import Child, wait_until
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from gridwatch.stack import Stack
from ingest.cli import ready_file
from simulators.mqtt_publisher import MqttPublisher
from tests.integration.pipeline import influx_rows, running

pytestmark = [pytest.mark.integration]


def fast_settings(settings: Settings) -> Settings:
    """Bursts far above a real sensor's rate must not be rate-limited here."""
    ingest = settings.ingest.model_copy(update={"rate_per_s": 100_000.0, "burst": 100_000.0})
    return settings.model_copy(update={"ingest": ingest})


def water_burst(registry: Registry, count: int, devices: int = 20) -> list[tuple[str, bytes]]:
    ids = [p.device.device_id for p in registry.devices_of("water")[:devices]]
    base = datetime.now(UTC) - timedelta(hours=3)
    out = []
    for i in range(count):
        dev = ids[i % len(ids)]
        seq = i // len(ids)
        ts = (base + timedelta(seconds=seq)).isoformat()
        out.append(
            (f"gw/v1/water/{dev}", json.dumps({"ts": ts, "level_cm": 1.0, "seq": seq}).encode())
        )
    return out


def seqs_in_kafka(settings: Settings) -> Counter[tuple[str, int]]:
    records = asyncio.run(read_topic(settings.kafka, readings_topic(settings.kafka, "water")))
    seen: Counter[tuple[str, int]] = Counter()
    for record in records:
        for reading in parse_record(ReadingBatch, record.value).readings:
            assert reading.seq is not None
            seen[(reading.device_id, reading.seq)] += 1
    return seen


def expected_seqs(messages: list[tuple[str, bytes]]) -> set[tuple[str, int]]:
    return {(t.rsplit("/", 1)[1], json.loads(p)["seq"]) for t, p in messages}


def test_two_bridges_share_the_load_without_loss_or_doubles(
    settings: Settings, registry: Registry
) -> None:
    s = fast_settings(settings)
    messages = water_burst(registry, 4000)
    with running(s, bridges=2, workers=0) as children:
        with MqttPublisher(s) as pub:
            for topic, payload in messages:
                pub.publish(topic, payload)
            pub.flush(60)
        want = expected_seqs(messages)
        wait_until(lambda: set(seqs_in_kafka(s)) >= want, 60, what="all seqs")
        for bridge in children["bridges"]:
            bridge.check_alive()
    seen = seqs_in_kafka(s)
    assert set(seen) == want
    assert max(seen.values()) == 1, "no crash happened, so nothing may be doubled"
    # both bridges took a share (their final metrics are written on a clean stop)
    forwarded = {
        row["instance"]: row["last"]
        for row in influx_rows(
            s, "SELECT LAST(forwarded) FROM pipeline WHERE stage='ingest' GROUP BY instance"
        )
    }
    assert len(forwarded) == 2
    assert all(v > 0 for v in forwarded.values()), forwarded
    assert sum(forwarded.values()) == len(messages)


def test_bridge_killed_mid_burst_loses_nothing(settings: Settings, registry: Registry) -> None:
    s = fast_settings(settings)
    messages = water_burst(registry, 10_000)
    client_id = f"{s.mqtt.client_id}-0"
    logs = s.stack.var_dir / "log" / s.kafka.topic_prefix
    published = threading.Event()
    errors: list[BaseException] = []

    def publish_all() -> None:
        try:
            with MqttPublisher(s) as pub:
                for topic, payload in messages:
                    pub.publish(topic, payload)
                pub.flush(120)
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)
        finally:
            published.set()

    with running(s, bridges=1, workers=0) as children:
        first = children["bridges"][0]
        publisher = threading.Thread(target=publish_all)
        publisher.start()
        wait_until(
            lambda: sum(seqs_in_kafka(s).values()) >= 1500, 60, what="a part of the burst forwarded"
        )
        first.kill()  # kill -9 in the middle of the burst
        killed_at = sum(seqs_in_kafka(s).values())
        ready_file(s, client_id).unlink(missing_ok=True)
        second = Child(
            "bridge-restarted", ["ingest", "run", "--client-id", client_id], s, logs
        ).start()
        children["bridges"].append(second)
        wait_until(
            lambda: second.check_alive() or ready_file(s, client_id).exists(), 60, what="restart"
        )
        publisher.join(180)
        assert not errors, errors
        want = expected_seqs(messages)
        wait_until(lambda: set(seqs_in_kafka(s)) >= want, 120, what="every seq in Kafka")
    assert killed_at < len(messages), (
        "the kill must happen mid-burst for this test to mean anything"
    )
    assert set(seqs_in_kafka(s)) == want


@pytest.mark.slow
def test_kafka_outage_loses_nothing_sent_during_it(
    settings: Settings, registry: Registry, stack: Stack
) -> None:
    """Kafka stopped for 30 s under a steady feed: every message devices sent, before,
    during and after the outage, is in Kafka once it is back (the broker keeps what it
    had acknowledged; the bridge holds the rest in its MQTT session)."""
    s = fast_settings(settings)
    ids = [p.device.device_id for p in registry.devices_of("water")[:10]]
    sent: list[tuple[str, int]] = []
    phase = {"name": "before"}
    during: set[tuple[str, int]] = set()
    stop = threading.Event()

    def steady() -> None:
        base = datetime.now(UTC) - timedelta(hours=1)
        with MqttPublisher(s) as pub:
            seq = 0
            while not stop.is_set():
                for dev in ids:
                    ts = (base + timedelta(seconds=seq)).isoformat()
                    pub.publish(
                        f"gw/v1/water/{dev}",
                        json.dumps({"ts": ts, "level_cm": 2.0, "seq": seq}).encode(),
                    )
                    sent.append((dev, seq))
                    if phase["name"] != "before":
                        during.add((dev, seq))
                seq += 1
                time.sleep(0.1)
            pub.flush(120)

    with running(s, bridges=1, workers=0) as children:
        thread = threading.Thread(target=steady)
        thread.start()
        time.sleep(3)
        stack.stop("kafka")
        phase["name"] = "outage"
        time.sleep(30)
        stack.start("kafka")
        phase["name"] = "after"
        time.sleep(5)
        stop.set()
        thread.join(180)
        children["bridges"][0].check_alive()
        wait_until(lambda: set(seqs_in_kafka(s)) >= during, 120, what="outage messages in Kafka")
        wait_until(lambda: set(seqs_in_kafka(s)) >= set(sent), 60, what="every message in Kafka")
    assert len(during) > 250
    assert set(sent) <= set(seqs_in_kafka(s))
