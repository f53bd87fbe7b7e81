"""A short scenario published over MQTT into the real broker arrives complete."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gridwatch.procs import wait_until
from gridwatch.stack import Stack
from simulators.city import generate_city
from simulators.delivery import expected_seqs, missing, received_seqs
from simulators.messages import Message
from simulators.mqtt_publisher import MqttPublisher
from simulators.runner import run_scenario
from simulators.scenario import load_scenario

pytestmark = [pytest.mark.integration]


def test_typhoon_over_mqtt_arrives_complete(stack: Stack, tmp_path: Path) -> None:
    s = stack.settings
    sc = load_scenario("typhoon").with_overrides(duration="20min", max_devices=150)
    city = generate_city(sc.city.seed, sc.city.size, max_devices=sc.city.max_devices)
    known = {d["device_id"] for d in city.devices}
    kinds = {d["device_id"]: d["kind"] for d in city.devices}
    stack.provision_devices(sorted(known | set(stack_devices(stack))), kinds=kinds)

    received: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    sub = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="", protocol=MQTTProtocolVersion.MQTTv5
    )
    assert s.mqtt.password is not None
    sub.username_pw_set(s.mqtt.username, s.mqtt.password.get_secret_value())
    sub.on_message = lambda c, u, m: received.append((m.topic, bytes(m.payload)))
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("gw/v1/#", qos=1)
    sub.max_queued_messages_set(0)
    sub.connect(s.mqtt.host, s.mqtt.port)
    sub.loop_start()
    assert subscribed.wait(10)

    sent: list[Message] = []
    refused: list[Message] = []  # a device's id under another kind: the broker refuses it
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    with MqttPublisher(s) as pub:

        def send(msg: Message) -> None:
            if msg.device_id in known:
                pub.publish(msg.topic, msg.payload_bytes())
                own = msg.topic == f"gw/v1/{kinds[msg.device_id]}/{msg.device_id}"
                (sent if own else refused).append(msg)

        run_scenario(sc, tmp_path / "run", start=start, on_message=send)
        pub.flush(60)
    want = expected_seqs(sent)
    try:
        wait_until(lambda: not missing(want, received_seqs(list(received))), 60, what="every seq")
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert len(sent) > 1000
    assert missing(want, received_seqs(received)) == {}
    assert not {m.topic for m in refused} & {topic for topic, _ in received}


def stack_devices(stack: Stack) -> list[str]:
    from gridwatch.registry import Registry

    return list(Registry.from_dir(stack.settings.registry_dir).devices)
