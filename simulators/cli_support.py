"""Shell helpers of the simulator commands: MQTT sink, provisioning, start times,
progress bars and summary tables."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from simulators.city import generate_city
from simulators.messages import Message

console = Console()


class MqttSink:
    """Publishes each message as its device; counts what the broker refused."""

    def __init__(self, known: set[str] | None = None) -> None:
        from gridwatch.cli import settings
        from simulators.mqtt_publisher import MqttPublisher, PublishError

        self._error = PublishError
        self.pub = MqttPublisher(settings())
        self.refused: Counter[str] = Counter()
        # Devices outside the registry (unknown_device faults) have no broker account:
        # the broker would refuse their CONNECT, so they are counted, not sent.
        self.known = known
        self.not_provisioned = 0

    def __call__(self, msg: Message) -> None:
        if self.known is not None and msg.device_id not in self.known:
            self.not_provisioned += 1
            return
        try:
            self.pub.publish(msg.topic, msg.payload_bytes())
        except self._error as exc:
            self.refused[str(exc).split(":", 1)[0][:80]] += 1

    def close(self, timeout_s: float = 120.0) -> None:
        try:
            self.pub.flush(timeout_s=timeout_s)
        finally:
            self.pub.close()


def provision(sc: Any) -> None:
    """Make the local stack know this city: registry files and broker passwords."""
    from gridwatch.cli import settings
    from gridwatch.stack import Stack

    st = settings()
    city = generate_city(sc.city.seed, sc.city.size, max_devices=sc.city.max_devices)
    city.write(st.registry_dir)
    count = Stack(st).provision_devices([d["device_id"] for d in city.devices], reload=True)
    console.print(
        f"provisioned {len(city.devices)} devices ({count} broker users); registry in "
        f"{st.registry_dir} (restart the bridge to load it)"
    )


def parse_start(start: str | None, to: str) -> datetime | None:
    if start is None:
        start = "now" if to == "mqtt" else "scenario"
    if start == "scenario":
        return None
    if start == "now":
        now = int(time.time())
        return datetime.fromtimestamp(now - now % 60, UTC)
    try:
        parsed = datetime.fromisoformat(start)
    except ValueError as exc:
        raise typer.BadParameter(f"--start {start!r}: use now, scenario or RFC 3339") from exc
    if parsed.tzinfo is None:
        raise typer.BadParameter("--start needs a time zone (e.g. 2026-07-14T06:00:00Z)")
    return parsed


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def summary_table(title: str, rows: list[tuple[str, Any]]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)


def provision_replay(devices: dict[str, str], *, size: str = "small", seed: int = 7) -> None:
    """Register replayed devices (id → kind) in a demo city and in the local broker.

    Devices the demo city does not know are placed one per comprehensive grid (inside
    its first micro-grid), so the registry can place them and ingest accepts them.
    """
    from gridwatch.cli import settings
    from gridwatch.stack import Stack

    st = settings()
    city = generate_city(seed, size)
    known = {d["device_id"] for d in city.devices}
    grids = [f for f in city.grids["features"] if f["properties"]["level"] == "grid"]
    extra = sorted((dev, kind) for dev, kind in devices.items() if dev not in known)
    for i, (dev, kind) in enumerate(extra):
        ring = grids[i % len(grids)]["geometry"]["coordinates"][0]
        (x0, y0), (x1, y1) = ring[0], ring[2]
        city.devices.append(
            {
                "device_id": dev,
                "kind": kind,
                "lon": round(x0 + 0.25 * (x1 - x0), 6),
                "lat": round(y0 + 0.25 * (y1 - y0), 6),
                "site_type": "replay",
                "site": f"site-{dev}",
                "interval_s": 60.0,
            }
        )
    city.registry()  # fails loudly if a replayed device cannot be placed
    city.write(st.registry_dir)
    count = Stack(st).provision_devices([d["device_id"] for d in city.devices], reload=True)
    console.print(
        f"provisioned {len(extra)} replayed devices ({count} broker users); registry in "
        f"{st.registry_dir} (restart the bridge to load it)"
    )


def listen(settings: Any, *, timeout_s: float, idle_s: float) -> list[tuple[str, bytes]]:
    """Subscribe to every device topic (QoS 1) as the ingest user; return what arrives.

    Stops after ``timeout_s``, or after ``idle_s`` without a message once one arrived.
    """
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    m = settings.mqtt
    got: list[tuple[str, bytes]] = []
    subscribed = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="gw-sim-listen", protocol=MQTTProtocolVersion.MQTTv5
    )
    if m.password is not None:
        client.username_pw_set(m.username, m.password.get_secret_value())
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{m.topic_root}/#", qos=1)
    client.on_subscribe = lambda c, u, mid, rc, p: subscribed.set()
    client.on_message = lambda c, u, msg: got.append((msg.topic, bytes(msg.payload)))
    client.connect(m.host, m.port, keepalive=30)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            from simulators.mqtt_publisher import PublishError

            raise PublishError(f"cannot subscribe at {m.host}:{m.port} as {m.username}")
        console.print(f"listening on {m.host}:{m.port} {m.topic_root}/# …")
        deadline = time.monotonic() + timeout_s
        last_n, last_change = 0, time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            n = len(got)
            if n != last_n:
                last_n, last_change = n, time.monotonic()
            elif n and time.monotonic() - last_change > idle_s:
                break
    finally:
        client.loop_stop()
        client.disconnect()
    return list(got)
