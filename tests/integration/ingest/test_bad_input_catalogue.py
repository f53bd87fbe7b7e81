"""Every class of bad input, sent over MQTT to a running bridge, lands in gw.deadletter
with its reason code (raw bytes and topic kept) while the bridge stays up."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest

from gridwatch.contracts import DeadLetter, parse_record
from gridwatch.kafka import read_topic
from gridwatch.procs import settings_env, wait_until
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from gridwatch.stack import Stack
from simulators.faults import malformed
from simulators.mqtt_publisher import MqttPublisher
from simulators.scenario import MALFORMED_CLASSES
from tests.integration.pipeline import running

pytestmark = [pytest.mark.integration]

GHOST = "ghost-00042"  # has a broker login but is not in the registry


def _fmt(t: int) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def test_every_bad_input_class_is_dead_lettered_with_its_reason(
    settings: Settings, registry: Registry, stack: Stack
) -> None:
    s = settings.model_copy(
        update={"ingest": settings.ingest.model_copy(update={"rate_per_s": 0.01, "burst": 3})}
    )
    stack.provision_devices([*registry.devices, GHOST], kinds={GHOST: "water"})
    devices = [p.device.device_id for p in registry.devices_of("water")]
    now = int(datetime.now(UTC).timestamp())
    rng = np.random.default_rng(3)
    cases: list[tuple[str, str, bytes]] = []  # (expected reason, topic, payload)
    for i, cls in enumerate(sorted(MALFORMED_CLASSES)):
        device = devices[i]
        body = json.dumps(
            {"level_cm": 4.2, "seq": 1, "ts": _fmt(now)}, sort_keys=True, separators=(",", ":")
        )
        topic, payload = malformed(cls, "water", device, body, now, _fmt, rng)
        if cls == "unknown_device":
            topic = f"gw/v1/water/{GHOST}"
        if cls == "topic_mismatch":
            # the broker refuses a device's id under another kind (tests/integration/
            # test_stack.py); what reaches the bridge is a payload naming another kind
            topic = f"gw/v1/water/{device}"
            payload = json.dumps({**json.loads(body), "kind": "rain"}).encode()
        cases.append((MALFORMED_CLASSES[cls], topic, payload))
    dup_device, rate_device = devices[len(cases)], devices[len(cases) + 1]
    dup = json.dumps({"level_cm": 1.0, "seq": 7, "ts": _fmt(now)}).encode()
    cases += [
        ("", f"gw/v1/water/{dup_device}", dup),
        ("duplicate", f"gw/v1/water/{dup_device}", dup),
    ]
    for seq in range(6):
        payload = json.dumps({"level_cm": 1.0, "seq": seq, "ts": _fmt(now - 60 + seq)}).encode()
        cases.append(("rate_limited" if seq >= 3 else "", f"gw/v1/water/{rate_device}", payload))

    with running(s, workers=0) as children:
        with MqttPublisher(s) as pub:
            for _, topic, payload in cases:
                pub.publish(topic, payload)
            pub.flush(30)
        expected = [c for c in cases if c[0]]

        def letters() -> list[DeadLetter] | None:
            found = [
                parse_record(DeadLetter, r.value)
                for r in asyncio.run(read_topic(s.kafka, s.kafka.topic("deadletter")))
            ]
            return found if len(found) >= len(expected) else None

        found = wait_until(letters, 60, what="every dead letter")
        children["bridges"][0].check_alive()  # the bridge stayed up through all of it
    got = sorted((d.reason.value, d.topic, d.raw) for d in found)
    assert got == sorted(expected)
    assert {r for r, _, _ in expected} >= set(MALFORMED_CLASSES.values()) | {
        "duplicate",
        "rate_limited",
    }


def test_ingest_stats_shows_each_bridge(settings: Settings, registry: Registry) -> None:
    device = registry.devices_of("water")[0].device.device_id
    with running(settings, workers=0), MqttPublisher(settings) as pub:
        for seq in range(5):
            ts = _fmt(int(datetime.now(UTC).timestamp()) - 60 + seq)
            pub.publish(
                f"gw/v1/water/{device}",
                json.dumps({"level_cm": 1.0, "seq": seq, "ts": ts}).encode(),
            )
        pub.publish(f"gw/v1/water/{device}", b"{broken")
        pub.flush(30)
    # the bridge writes its final counters on a clean stop
    result = subprocess.run(
        [sys.executable, "-m", "gridwatch", "ingest", "stats"],
        env={**os.environ, **settings_env(settings), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"{settings.mqtt.client_id}-0" in result.stdout
    assert "malformed" in result.stdout
