"""``gridwatch stack`` as a user runs it, and the broker's authentication and ACLs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gridwatch.credentials import device_password
from gridwatch.registry import Registry
from gridwatch.stack import Stack, free_port

pytestmark = [pytest.mark.integration]


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridwatch", *args],
        env={**os.environ, **env, "COLUMNS": "200"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stack_up_status_down(tmp_path: Path) -> None:
    env = {
        "GW_MQTT__PORT": str(free_port()),
        "GW_KAFKA__BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "GW_INFLUX__URL": f"http://127.0.0.1:{free_port()}",
        "GW_STACK__INFLUX_RPC_PORT": str(free_port()),
    }
    try:
        up = _cli(["stack", "up"], env, tmp_path)
        assert up.returncode == 0, up.stderr
        status = _cli(["stack", "status"], env, tmp_path)
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("healthy") == 3
        assert (tmp_path / "var" / "credentials.toml").stat().st_mode & 0o077 == 0
        again = _cli(["stack", "up"], env, tmp_path)  # idempotent
        assert again.returncode == 0
        assert again.stdout.count("healthy") == 3
    finally:
        down = _cli(["stack", "down"], env, tmp_path)
    assert down.returncode == 0
    after = _cli(["stack", "status"], env, tmp_path)
    assert after.returncode == 1
    assert "healthy" not in after.stdout
    assert after.stdout.count("stopped") == 3


def test_missing_binary_is_one_readable_line(tmp_path: Path) -> None:
    env = {"GW_STACK__MOSQUITTO_BIN": "mosquitto-not-installed", "GW_MQTT__PORT": str(free_port())}
    result = _cli(["stack", "up", "mosquitto"], env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "apt-get install -y mosquitto" in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_service_is_one_readable_line(tmp_path: Path) -> None:
    result = _cli(["stack", "up", "redis"], {}, tmp_path)
    assert result.returncode == 2
    assert "unknown service 'redis'" in result.stderr
    assert "Traceback" not in result.stderr


def _client(
    stack: Stack, user: str | None, password: str | None
) -> tuple[mqtt.Client, list[mqtt.ReasonCode]]:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="", protocol=MQTTProtocolVersion.MQTTv5
    )
    if user is not None:
        client.username_pw_set(user, password)
    codes: list[mqtt.ReasonCode] = []
    client.on_connect = lambda c, u, f, rc, p: codes.append(rc)
    client.connect(stack.settings.mqtt.host, stack.settings.mqtt.port)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not codes and time.monotonic() < deadline:
        time.sleep(0.01)
    return client, codes


def test_anonymous_and_wrong_password_are_refused(stack: Stack, registry: Registry) -> None:
    anon, codes = _client(stack, None, None)
    anon.loop_stop()
    assert codes and codes[0].is_failure
    device = next(iter(registry.devices))
    bad, codes = _client(stack, device, "wrong")
    bad.loop_stop()
    assert codes and codes[0].is_failure


def test_device_may_publish_only_under_its_own_topic(stack: Stack, registry: Registry) -> None:
    s = stack.settings
    assert s.mqtt.password is not None and s.sim.device_secret is not None
    a, b = [p.device.device_id for p in registry.devices_of("water")[:2]]
    received: list[str] = []
    subscribed = threading.Event()
    sub, codes = _client(stack, s.mqtt.username, s.mqtt.password.get_secret_value())
    assert codes and not codes[0].is_failure
    sub.on_message = lambda c, u, m: received.append(m.topic)
    sub.on_subscribe = lambda *args: subscribed.set()
    sub.subscribe("gw/v1/#", qos=1)
    assert subscribed.wait(5)

    dev, codes = _client(stack, a, device_password(s.sim.device_secret.get_secret_value(), a))
    assert codes and not codes[0].is_failure
    dev.publish(f"gw/v1/water/{b}", b"{}", qos=1).wait_for_publish(5)
    dev.publish(f"gw/v1/water/{a}", b"{}", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while f"gw/v1/water/{a}" not in received and time.monotonic() < deadline:
        time.sleep(0.01)
    for c in (dev, sub):
        c.disconnect()
        c.loop_stop()
    assert received == [f"gw/v1/water/{a}"]
