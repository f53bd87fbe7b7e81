"""Publish device messages over MQTT 5, QoS 1, each device authenticated as itself.

``MqttPublisher.publish(topic, payload)`` sends as the device named by the topic's last
segment (username = device id, password derived from the development device secret,
see ``gridwatch.credentials``). Connections are opened on first use and driven by one
I/O thread with a selector (paho's external-loop API), so hundreds of devices do not
cost hundreds of threads. ``flush()`` waits until the broker acknowledged every
message (PUBACK); a PUBACK with a failure reason (0x87 not authorised: a device
publishing outside its own topic) is counted in ``stats.refused_messages``.

Interface::

    with MqttPublisher(settings) as pub:
        pub.publish("gw/v1/water/wl-00001", b'{"ts": ..., "level_cm": 3.1}')
        pub.flush(timeout_s=30)
    pub.stats  # published, refused devices, messages the broker refused (by reason)
"""

from __future__ import annotations

import contextlib
import selectors
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from gridwatch.credentials import device_password
from gridwatch.errors import GridWatchError
from gridwatch.settings import Settings


class PublishError(GridWatchError):
    """A device could not connect, or messages were not acknowledged in time."""


@dataclass
class PublisherStats:
    published: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # device → CONNACK reason
    refused_messages: dict[str, int] = field(default_factory=dict)  # PUBACK reason → count


class MqttPublisher:
    def __init__(
        self,
        settings: Settings,
        *,
        connect_timeout_s: float = 10.0,
        max_inflight: int = 100,
        as_user: tuple[str, str] | None = None,
    ) -> None:
        if settings.sim.device_secret is None and as_user is None:
            raise PublishError(
                "settings.sim.device_secret is not set; run `gridwatch stack up` first"
            )
        self.settings = settings
        self.connect_timeout_s = connect_timeout_s
        self.max_inflight = max_inflight
        self.as_user = as_user
        self.stats = PublisherStats()
        self._clients: dict[str, mqtt.Client] = {}
        self._pending: list[mqtt.MQTTMessageInfo] = []
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._io = threading.Thread(target=self._io_loop, name="mqtt-publisher-io", daemon=True)
        self._io.start()

    # -- public ----------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> None:
        device = topic.rsplit("/", 1)[-1]
        client = self._client(device)
        with self._lock:
            info = client.publish(topic, payload, qos=qos)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish as {device} failed: {mqtt.error_string(info.rc)}")
        self._pending.append(info)
        self.stats.published += 1
        if len(self._pending) >= 5000:
            self._reap()

    def flush(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._reap()
            if not self._pending:
                return
            if time.monotonic() > deadline:
                raise PublishError(
                    f"{len(self._pending)} messages not acknowledged in {timeout_s:.0f} s"
                )
            time.sleep(0.005)

    def close(self) -> None:
        self._stop.set()
        self._io.join(timeout=2)
        for client in self._clients.values():
            client.disconnect()
        self._selector.close()

    def __enter__(self) -> MqttPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: mqtt.ReasonCode,
        properties: object,
    ) -> None:
        """Runs in the I/O thread (under the lock): count what the broker refused."""
        if reason.is_failure:
            key = str(reason)
            self.stats.refused_messages[key] = self.stats.refused_messages.get(key, 0) + 1

    def _reap(self) -> None:
        self._pending = [info for info in self._pending if not info.is_published()]

    def _client(self, device: str) -> mqtt.Client:
        client = self._clients.get(device)
        if client is not None:
            return client
        if device in self.stats.refused:
            raise PublishError(f"device {device} was refused: {self.stats.refused[device]}")
        m = self.settings.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sim-{device}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if self.as_user is not None:
            client.username_pw_set(*self.as_user)
        else:
            assert self.settings.sim.device_secret is not None
            secret = self.settings.sim.device_secret.get_secret_value()
            client.username_pw_set(device, device_password(secret, device))
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)
        client.on_publish = self._on_publish
        result: list[mqtt.ReasonCode] = []
        client.on_connect = lambda c, u, f, rc, p: result.append(rc)
        with self._lock:
            client.connect(m.host, m.port, keepalive=60)
            sock = client.socket()
            assert sock is not None
            self._selector.register(sock, selectors.EVENT_READ, client)
        deadline = time.monotonic() + self.connect_timeout_s
        while not result and time.monotonic() < deadline:
            time.sleep(0.001)
        if not result or result[0].is_failure:
            reason = str(result[0]) if result else "no CONNACK"
            self.stats.refused[device] = reason
            with self._lock:
                # the fd may be reused by the next connection: forget it first
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
                with contextlib.suppress(OSError):
                    sock.close()
            raise PublishError(f"device {device} cannot connect: {reason}")
        with self._lock:  # the I/O thread copies this dict under the lock
            self._clients[device] = client
        return client

    def _io_loop(self) -> None:
        last_misc = time.monotonic()
        while not self._stop.is_set():
            try:
                events = self._selector.select(timeout=0.01) if self._selector.get_map() else []
            except (OSError, ValueError):
                events = []
            with self._lock:
                for key, _ in events:
                    key.data.loop_read()
                for client in list(self._clients.values()):
                    if client.want_write():
                        client.loop_write()
                now = time.monotonic()
                if now - last_misc > 1.0:
                    for client in self._clients.values():
                        client.loop_misc()
                    last_misc = now
            if not events:
                time.sleep(0.001)
