"""``gridwatch stack`` as a user runs it, and the broker's authentication and ACLs."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gridwatch.credentials import device_password
from gridwatch.registry import Registry
from gridwatch.stack import Stack, free_port
from tests.integration.cli import run_cli

pytestmark = [pytest.mark.integration]


def test_stack_up_status_down(tmp_path: Path) -> None:
    env = {
        "GW_MQTT__PORT": str(free_port()),
        "GW_KAFKA__BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "GW_STACK__KAFKA_CONTROLLER_PORTS": f"[{free_port()}]",
        "GW_INFLUX__URL": f"http://127.0.0.1:{free_port()}",
        "GW_STACK__INFLUX_RPC_PORT": str(free_port()),
    }
    try:
        up = run_cli(["stack", "up"], env, tmp_path)
        assert up.returncode == 0, up.stderr
        status = run_cli(["stack", "status"], env, tmp_path)
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("healthy") == 3
        assert (tmp_path / "var" / "credentials.toml").stat().st_mode & 0o077 == 0
        # idempotent, and a registry outside settings.registry_dir gives its devices
        # logins (their kinds come from that registry)
        from simulators.city import generate_city

        generate_city(5, "small").write(tmp_path / "elsewhere")
        again = run_cli(["stack", "up", "--registry", str(tmp_path / "elsewhere")], env, tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("healthy") == 3
    finally:
        down = run_cli(["stack", "down"], env, tmp_path)
    assert down.returncode == 0
    after = run_cli(["stack", "status"], env, tmp_path)
    assert after.returncode == 1
    assert "healthy" not in after.stdout
    assert after.stdout.count("stopped") == 3


def test_missing_binary_is_one_readable_line(tmp_path: Path) -> None:
    env = {"GW_STACK__MOSQUITTO_BIN": "mosquitto-not-installed", "GW_MQTT__PORT": str(free_port())}
    result = run_cli(["stack", "up", "mosquitto"], env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "apt-get install -y mosquitto" in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_service_is_one_readable_line(tmp_path: Path) -> None:
    result = run_cli(["stack", "up", "redis"], {}, tmp_path)
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


def _device(stack: Stack, device: str) -> tuple[mqtt.Client, list[mqtt.ReasonCode]]:
    secret = stack.settings.sim.device_secret
    assert secret is not None
    return _client(stack, device, device_password(secret.get_secret_value(), device))


def _subscribe(client: mqtt.Client, topic: str) -> str:
    """The SUBACK reason for one filter."""
    answers: list[str] = []
    client.on_subscribe = lambda c, u, mid, rcs, p: answers.extend(str(rc) for rc in rcs)
    client.subscribe(topic, qos=1)
    deadline = time.monotonic() + 5
    while not answers and time.monotonic() < deadline:
        time.sleep(0.01)
    return answers[0] if answers else "no SUBACK"


def _close(*clients: mqtt.Client) -> None:
    for c in clients:
        c.disconnect()
        c.loop_stop()


def test_a_device_may_not_publish_its_id_under_another_kind(
    stack: Stack, registry: Registry
) -> None:
    s = stack.settings
    assert s.mqtt.password is not None
    device = registry.devices_of("water")[0].device.device_id
    sub, _ = _client(stack, s.mqtt.username, s.mqtt.password.get_secret_value())
    received: list[str] = []
    sub.on_message = lambda c, u, m: received.append(m.topic)
    assert _subscribe(sub, "gw/v1/#") == "Granted QoS 1"
    dev, codes = _device(stack, device)
    assert codes and not codes[0].is_failure
    acks: dict[int, str] = {}
    dev.on_publish = lambda c, u, mid, rc, p: acks.__setitem__(mid, str(rc))
    wrong = [f"gw/v1/{kind}/{device}" for kind in ("rain", "camera", "status", "smoke")]
    mids = [dev.publish(topic, b"{}", qos=1).mid for topic in [*wrong, f"gw/v1/water/{device}"]]
    deadline = time.monotonic() + 5
    while f"gw/v1/water/{device}" not in received and time.monotonic() < deadline:
        time.sleep(0.01)
    _close(dev, sub)
    assert [acks.get(mid) for mid in mids] == ["Not authorized"] * len(wrong) + ["Success"]
    assert received == [f"gw/v1/water/{device}"]


def test_devices_subscribe_to_nothing_and_the_bridges_share_loses_nothing(
    stack: Stack, registry: Registry
) -> None:
    s = stack.settings
    assert s.mqtt.password is not None
    group = f"g{free_port()}"
    bridge, _ = _client(stack, s.mqtt.username, s.mqtt.password.get_secret_value())
    to_bridge: list[str] = []
    bridge.on_message = lambda c, u, m: to_bridge.append(m.topic)
    assert _subscribe(bridge, f"$share/{group}/gw/v1/#") == "Granted QoS 1"
    spy_id = registry.devices_of("camera")[0].device.device_id
    spy, codes = _device(stack, spy_id)
    assert codes and not codes[0].is_failure
    to_spy: list[str] = []
    spy.on_message = lambda c, u, m: to_spy.append(m.topic)
    filters = [
        f"$share/{group}/gw/v1/#",  # the bridges' own group: would steal part of the stream
        "$share/spies/gw/v1/#",
        "gw/v1/#",
        "#",
        "$SYS/#",
        "$CONTROL/dynamic-security/#",
        f"gw/v1/camera/{spy_id}",
    ]
    answers = {topic: _subscribe(spy, topic) for topic in filters}
    assert answers == dict.fromkeys(filters, "Not authorized")
    device = registry.devices_of("water")[0].device.device_id
    dev, _ = _device(stack, device)
    infos = [dev.publish(f"gw/v1/water/{device}", b"{}", qos=1) for _ in range(100)]
    for info in infos:
        info.wait_for_publish(5)
    deadline = time.monotonic() + 10
    while len(to_bridge) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # anything wrongly handed to the spy arrives by now
    _close(dev, spy, bridge)
    assert len(to_bridge) == 100
    assert to_spy == []


def test_logins_change_on_a_running_broker(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridwatch import mosquitto_control

    before = stack.provisioned_devices()
    new = "dyn-test-00001"
    try:
        # a small change: dynamic-security commands, the broker keeps running
        pid = stack.service_status("mosquitto").pid
        stack.provision_devices([*before, new], kinds={new: "rain"})
        assert stack.service_status("mosquitto").pid == pid
        assert stack.provisioned_devices() == {**before, new: "rain"}
        dev, codes = _device(stack, new)
        assert codes and not codes[0].is_failure
        acks: dict[int, str] = {}
        # nobody subscribes here: "No matching subscribers" is a success code too
        dev.on_publish = lambda c, u, mid, rc, p: acks.__setitem__(
            mid, "refused" if rc.is_failure else "accepted"
        )
        own = dev.publish(f"gw/v1/rain/{new}", b"{}", qos=1)
        other = dev.publish(f"gw/v1/water/{new}", b"{}", qos=1)
        own.wait_for_publish(5)
        other.wait_for_publish(5)
        _close(dev)
        assert (acks[own.mid], acks[other.mid]) == ("accepted", "refused")
        stack.provision_devices(list(before), kinds=before)
        gone, codes = _device(stack, new)
        gone.loop_stop()
        assert codes and codes[0].is_failure
        # a change too big for the plugin to apply quickly: a restart on a new file
        monkeypatch.setattr(mosquitto_control, "REWRITE_BUDGET", 0)
        stack.provision_devices([*before, new], kinds={new: "bike"})
        status = stack.service_status("mosquitto")
        assert status.healthy and status.pid != pid
        dev, codes = _device(stack, new)
        _close(dev)
        assert codes and not codes[0].is_failure
        path = stack.var / "mosquitto" / "dynsec.json"
        assert path.stat().st_mode & 0o077 == 0
    finally:
        monkeypatch.undo()
        stack.provision_devices(list(before), kinds=before)
    assert stack.provisioned_devices() == before


def test_dynsec_hashes_match_what_mosquitto_writes(tmp_path: Path) -> None:
    import json

    from gridwatch.mosquitto_conf import password_matches

    path = tmp_path / "dynsec.json"
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(path), "admin", "s3cret"],
        check=True,
        capture_output=True,
    )
    client = json.loads(path.read_text())["clients"][0]
    assert password_matches(client, "s3cret")
    assert not password_matches(client, "s3cret ")
