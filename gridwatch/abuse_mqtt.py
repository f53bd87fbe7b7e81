"""The MQTT half of the attack sweep: send the plan (``gridwatch.abuse_plan``) at rate.

Messages the broker should deliver go through ``MqttPublisher`` (each device logged in
as itself). Messages it should refuse go through probes of our own, which record the
broker's answer: the PUBACK reason code, a dropped connection, the CONNACK of a bad
login, the SUBACK of a subscription a device may not make (it must be refused) and any
message delivered to it all the same.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gridwatch.abuse_plan import (
    ACL,
    BRIDGE,
    CLIENT,
    CONNECT_CASES,
    DISCONNECT,
    READING,
    SUBSCRIBE_CASES,
    Pools,
    Send,
    SeqCounter,
    flood_sends,
    good_body,
    round_sends,
    rounds_per_s_max,
)
from gridwatch.contracts import KINDS
from gridwatch.credentials import device_password
from gridwatch.settings import Settings
from simulators.mqtt_publisher import MqttPublisher

HIJACK_SEQ0 = 500_000  # seq of the readings sent while an intruder is in the share group


class Probe:
    """One paho client (its own network thread) recording what the broker answers."""

    def __init__(self, settings: Settings, client_id: str, user: str | None, pw: str) -> None:
        self.settings = settings
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if user is not None:
            self.client.username_pw_set(user, pw)
        self.client.max_inflight_messages_set(1000)
        self.connack: str | None = None
        self.connected = False
        self.answered = threading.Event()
        self.dropped = threading.Event()
        self.acks: dict[int, str] = {}
        self.granted: list[str] = []
        self.received = 0
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, c: Any, u: Any, f: Any, rc: mqtt.ReasonCode, p: Any) -> None:
        self.connack = str(rc)
        self.connected = not rc.is_failure
        self.answered.set()

    def _on_disconnect(self, c: Any, u: Any, f: Any, rc: mqtt.ReasonCode, p: Any) -> None:
        if self.connack is None:
            self.connack = f"disconnected: {rc}"
        self.answered.set()
        self.dropped.set()

    def _on_publish(self, c: Any, u: Any, mid: int, rc: mqtt.ReasonCode, p: Any) -> None:
        self.acks[mid] = str(rc)

    def _on_subscribe(self, c: Any, u: Any, mid: int, rcs: list[mqtt.ReasonCode], p: Any) -> None:
        self.granted.extend(str(rc) for rc in rcs)

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1

    def connect(self, timeout_s: float = 5.0) -> str:
        m = self.settings.mqtt
        try:
            self.client.connect(m.host, m.port, keepalive=30)
        except OSError as exc:
            self.connack = f"socket error: {exc}"
            return self.connack
        self.client.loop_start()
        self.answered.wait(timeout_s)
        return self.connack or "no CONNACK"

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()

    def connect_sync(self, timeout_s: float = 5.0) -> str:
        """Connect without a network thread (short-lived probes: no reconnect loop)."""
        m = self.settings.mqtt
        try:
            self.client.connect(m.host, m.port, keepalive=30)
        except OSError as exc:
            self.connack = f"socket error: {exc}"
            return self.connack
        self.pump(timeout_s, self.answered)
        return self.connack or "no CONNACK"

    def pump(self, timeout_s: float, until: threading.Event) -> bool:
        deadline = time.monotonic() + timeout_s
        while not until.is_set() and time.monotonic() < deadline:
            if self.client.loop(timeout=0.02) != mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._on_disconnect(None, None, None, mqtt.ReasonCode(2, "Unspecified error"), None)
        return until.is_set()

    def close_sync(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop(timeout=0.01)
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


@dataclass
class MqttSweep:
    """What was sent and what the broker answered (the bridge's side is read from Kafka)."""

    rounds: int = 0
    seconds: float = 0.0
    rounds_per_s_target: float = 0.0
    sent: Counter[str] = field(default_factory=Counter)  # class → messages
    route: dict[str, str] = field(default_factory=dict)  # class → route
    expect: dict[str, str] = field(default_factory=dict)  # class → expected outcome
    by_key: dict[tuple[str, bytes], str] = field(default_factory=dict)  # (topic, raw) → class
    # valid (device, seq) sent → class
    readings: dict[tuple[str, int], str] = field(default_factory=dict)
    refused_keys: set[tuple[str, bytes]] = field(default_factory=set)  # must never arrive
    flood: set[tuple[str, int]] = field(default_factory=set)  # flood (device, seq) sent
    refused: Counter[str] = field(default_factory=Counter)  # class → refusals seen
    not_refused: Counter[str] = field(default_factory=Counter)  # class → accepted by broker
    broker_answers: dict[str, Counter[str]] = field(default_factory=dict)
    connects: dict[str, Counter[str]] = field(default_factory=dict)  # case → CONNACKs
    subscribes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def note(self, s: Send) -> None:
        self.sent[s.cls] += 1
        self.route.setdefault(s.cls, s.route)
        self.expect.setdefault(s.cls, s.expect)
        key = (s.topic, s.payload)
        if s.route != BRIDGE:
            self.refused_keys.add(key)
        elif s.expect != READING or key not in self.by_key:
            # a repeated reading is filed under the class that expects the dead letter
            self.by_key[key] = s.cls

    def answer(self, cls: str, text: str, refused: bool) -> None:
        self.broker_answers.setdefault(cls, Counter())[text] += 1
        (self.refused if refused else self.not_refused)[cls] += 1


def _seq_of(payload: bytes) -> int:
    import json

    return int(json.loads(payload)["seq"])


def run_mqtt_sweep(
    settings: Settings,
    pools: Pools,
    *,
    seconds: float,
    rate: float,
    seed: int = 7,
    on_round: Callable[[MqttSweep], None] | None = None,
) -> MqttSweep:
    """Send rounds at up to ``rate`` messages/s for ``seconds``; flood once at the start."""
    root = settings.mqtt.topic_root
    secret = settings.sim.device_secret
    assert secret is not None
    pw = secret.get_secret_value()
    rng = np.random.default_rng(seed)
    seq = SeqCounter()
    out = MqttSweep()
    per_round = len(
        round_sends(0, time.time(), pools, root, np.random.default_rng(0), SeqCounter())
    )
    rho = min(rate / per_round, rounds_per_s_max(pools, root, settings.ingest.rate_per_s))
    out.rounds_per_s_target = rho
    tag = f"{int(time.time() * 1000) % 10**8}"
    attacker = Probe(
        settings, f"abuse-attacker-{tag}", pools.attacker, device_password(pw, pools.attacker)
    )
    if attacker.connect() != "Success":
        raise RuntimeError(f"the attacker device could not log in: {attacker.connack}")
    spies = _spies(settings, pools, pw, tag)
    pending: list[tuple[str, int]] = []  # (class, mid) published by the attacker
    last_disconnect = 0.0
    last_connects = 0.0
    started = time.monotonic()
    try:
        with MqttPublisher(settings, max_inflight=200) as pub:
            # a device flooding past its rate limit: the excess is dead-lettered
            n_flood = int(settings.ingest.burst) + max(50, int(settings.ingest.burst) // 2)
            for s in flood_sends(pools, root, n_flood, time.time(), seq):
                pub.publish(s.topic, s.payload)
                out.note(s)
                out.flood.add((s.publisher, _seq_of(s.payload)))
            r = 0
            while (now := time.monotonic()) - started < seconds:
                ahead = started + r / rho - now
                if ahead > 0:
                    time.sleep(min(ahead, 0.05))
                    continue
                for s in round_sends(r, time.time(), pools, root, rng, seq):
                    if s.route == BRIDGE:
                        pub.publish(s.topic, s.payload)
                        if s.expect == READING:
                            out.readings[(s.publisher, _seq_of(s.payload))] = s.cls
                    elif s.route == ACL:
                        info = attacker.client.publish(s.topic, s.payload, qos=1)
                        pending.append((s.cls, info.mid))
                    elif s.route == CLIENT:
                        try:
                            attacker.client.publish(s.topic, s.payload, qos=1)
                        except ValueError as exc:
                            out.answer(s.cls, f"client refused: {exc}", True)
                        else:
                            out.answer(s.cls, "client sent it", False)
                    elif s.route == DISCONNECT:
                        if now - last_disconnect < 1.0:
                            continue  # a new connection per try: at most one a second
                        last_disconnect = now
                        _try_disconnect(settings, s, pw, tag, r, out)
                    out.note(s)
                if now - last_connects >= 1.0:
                    last_connects = now
                    _try_connects(settings, pools, pw, tag, r, out)
                r += 1
                out.rounds = r
                if on_round is not None:
                    on_round(out)
            out.seconds = time.monotonic() - started
            pub.flush(120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(m not in attacker.acks for _, m in pending):
            time.sleep(0.05)
        for cls, mid in pending:
            text = attacker.acks.get(mid, "no PUBACK")
            out.answer(cls, text, text == "Not authorized")
        time.sleep(0.5)  # let anything wrongly delivered reach the spies
        for name, (probe, topic) in spies.items():
            out.subscribes[name] = _subscribe_doc(topic, probe)
    finally:
        attacker.close()
        for probe, _ in spies.values():
            probe.close()
    return out


REFUSED_SUBACK = "Not authorized"  # reason code 0x87


def _subscribe_doc(topic: str, probe: Probe) -> dict[str, Any]:
    suback = sorted(set(probe.granted))
    return {
        "filter": topic,
        "suback": suback,
        "refused": suback == [REFUSED_SUBACK],
        "messages_received": probe.received,
    }


def _spies(settings: Settings, pools: Pools, pw: str, tag: str) -> dict[str, tuple[Probe, str]]:
    """One device per forbidden subscription, listening for the whole sweep."""
    root = settings.mqtt.topic_root.rstrip("/")
    spy_dev = pools.bad["camera"][0]
    victim = pools.honest["water"][0]
    spies: dict[str, tuple[Probe, str]] = {}
    for name, pattern in SUBSCRIBE_CASES:
        topic = pattern.format(root=root, victim=victim, group=settings.mqtt.share_group)
        probe = Probe(settings, f"abuse-spy-{name}-{tag}", spy_dev, device_password(pw, spy_dev))
        if probe.connect() != "Success":
            raise RuntimeError(f"spy device could not log in: {probe.connack}")
        probe.client.subscribe(topic, qos=1)
        spies[name] = (probe, topic)
    return spies


def _try_disconnect(settings: Settings, s: Send, pw: str, tag: str, r: int, out: MqttSweep) -> None:
    probe = Probe(settings, f"abuse-ctl-{tag}-{r}", s.publisher, device_password(pw, s.publisher))
    try:
        if probe.connect_sync() != "Success":
            out.answer(s.cls, f"login failed: {probe.connack}", False)
            return
        probe.client.publish(s.topic, s.payload, qos=1)
        dropped = probe.pump(3.0, probe.dropped)
        out.answer(s.cls, "connection dropped" if dropped else "connection kept", dropped)
    finally:
        probe.close_sync()


def _try_connects(
    settings: Settings, pools: Pools, pw: str, tag: str, r: int, out: MqttSweep
) -> None:
    device, other = pools.attacker, pools.honest["water"][0]
    service = settings.mqtt.username
    users = {"": None, "device": device, "nobody": "abuse-no-such-user", "service": service}
    passwords = {
        "none": "",
        "wrong": "not-the-password",
        "other-device": device_password(pw, other),
        "device": device_password(pw, service),
        "empty": "",
    }
    for name, user_key, pw_key in CONNECT_CASES:
        probe = Probe(settings, f"abuse-login-{name}-{tag}-{r}", users[user_key], passwords[pw_key])
        try:
            answer = probe.connect_sync()
        finally:
            probe.close_sync()
        out.connects.setdefault(name, Counter())[answer] += 1


def run_hijack(
    settings: Settings, pools: Pools, n: int = 200
) -> tuple[dict[str, Any], dict[tuple[str, int], str]]:
    """A device tries to join the bridge's shared subscription, then honest devices publish.

    The broker must refuse the SUBSCRIBE (SUBACK 0x87): a member it admitted would be
    handed part of the stream, and without read access the broker would drop it, lost
    to the bridge. Returns the intruder's side and the readings sent, which must all
    reach Kafka.
    """
    root = settings.mqtt.topic_root.rstrip("/")
    assert settings.sim.device_secret is not None
    pw = settings.sim.device_secret.get_secret_value()
    intruder = pools.bad["camera"][-1]
    topic = f"$share/{settings.mqtt.share_group}/{root}/#"
    spy = Probe(settings, f"abuse-hijack-{intruder}", intruder, device_password(pw, intruder))
    sent: dict[tuple[str, int], str] = {}
    try:
        if spy.connect() != "Success":
            raise RuntimeError(f"intruder device could not log in: {spy.connack}")
        spy.client.subscribe(topic, qos=1)
        deadline = time.monotonic() + 5
        while not spy.granted and time.monotonic() < deadline:
            time.sleep(0.01)
        with MqttPublisher(settings) as pub:
            for i in range(n):
                kind = KINDS[i % len(KINDS)]
                honest = pools.honest[kind]
                device = honest[(i // len(KINDS)) % len(honest)]
                seq = HIJACK_SEQ0 + i
                body = good_body(kind, seq, time.time() - 2).encode()
                pub.publish(f"{root}/{kind}/{device}", body)
                sent[(device, seq)] = "hijack"
            pub.flush(60)
        time.sleep(0.5)
        doc = {**_subscribe_doc(topic, spy), "sent": n}
    finally:
        spy.close()
    return doc, sent
