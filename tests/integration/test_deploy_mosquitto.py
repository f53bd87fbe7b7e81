"""Production's Mosquitto (deploy/mosquitto/mosquitto.conf) run here with the file an
operator provisions (`gridwatch stack provision --out`): the service user reads the
feeds through its shared subscription, a device publishes on its own topic only and
cannot join the share group."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from gridwatch.credentials import device_password
from gridwatch.mosquitto_conf import find_plugin
from gridwatch.registry import Registry
from gridwatch.stack import Stack, free_port

from .test_stack import _client, _close, _subscribe

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PW, DEVICE_SECRET = "prod-service-pw", "prod-device-secret"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _production_conf(data: Path, port: int) -> str:
    """deploy/mosquitto/mosquitto.conf with this machine's paths and a free port."""
    text = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text(encoding="utf-8")
    for old, new in {
        "/usr/lib/mosquitto_dynamic_security.so": str(find_plugin(MOSQUITTO)),
        "/mosquitto/data/": f"{data}/",
        "listener 1883 0.0.0.0": f"listener {port} 127.0.0.1",
        "log_dest stdout": f"log_dest file {data}/mosquitto.log",
    }.items():
        assert old in text, old
        text = text.replace(old, new)
    return text + "user root\n" if os.geteuid() == 0 else text


def test_provisioned_production_broker_enforces_the_acls(
    stack: Stack, registry: Registry, test_city: Path, tmp_path: Path
) -> None:
    out = tmp_path / "secrets" / "dynsec.json"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GW_")},
        "GW_MQTT__PASSWORD": SERVICE_PW,
        "GW_SIM__DEVICE_SECRET": DEVICE_SECRET,
        "GW_STACK__VAR_DIR": str(tmp_path / "var"),
    }
    args = ["stack", "provision", "--registry", str(test_city), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "gridwatch", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o077 == 0
    assert Path(f"{out}.admin").stat().st_mode & 0o077 == 0

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(out, data / "dynsec.json")  # what entrypoint.sh does
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(_production_conf(data, port), encoding="utf-8")
    broker = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert broker.poll() is None, broker.stderr.read() if broker.stderr else ""
            assert time.monotonic() < deadline, "production Mosquitto did not listen"
            time.sleep(0.05)
        mqtt = stack.settings.mqtt.model_copy(update={"host": "127.0.0.1", "port": port})
        here = SimpleNamespace(settings=stack.settings.model_copy(update={"mqtt": mqtt}))
        device = registry.devices_of("water")[0].device.device_id

        ingest, codes = _client(here, stack.settings.mqtt.username, SERVICE_PW)  # type: ignore[arg-type]
        assert codes and not codes[0].is_failure
        assert _subscribe(ingest, "$share/prod/gw/v1/#") == "Granted QoS 1"
        received: list[str] = []
        ingest.on_message = lambda c, u, m: received.append(m.topic)

        dev, codes = _client(here, device, device_password(DEVICE_SECRET, device))  # type: ignore[arg-type]
        assert codes and not codes[0].is_failure
        assert _subscribe(dev, "$share/prod/gw/v1/#") == "Not authorized"
        refused = dev.publish(f"gw/v1/rain/{device}", b"{}", qos=1)
        dev.publish(f"gw/v1/water/{device}", b"{}", qos=1).wait_for_publish(5)
        refused.wait_for_publish(5)
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
        _close(dev, ingest)
        assert received == [f"gw/v1/water/{device}"]

        wrong, codes = _client(here, device, "wrong")  # type: ignore[arg-type]
        wrong.loop_stop()
        assert codes and codes[0].is_failure
    finally:
        broker.terminate()
        broker.wait(10)
