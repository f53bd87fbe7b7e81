"""What the attack sweep sends over MQTT, and what must become of each message (pure).

A *round* is one pass over every bad-input class: the decoder's catalogue
(``ingest.badinput``), the simulators' fault classes (``simulators.faults.malformed``,
one kind per round in turn), a reading sent twice (``duplicate``), publishes that the
broker's ACL must refuse (another device's topic, the device's own id under another
kind, outside the topic root, ``$SYS``), and one valid reading per kind from honest
devices, which must all arrive. Rounds rotate over pools of devices so that no device
exceeds half of the bridge's per-device rate limit; ``rounds_per_s_max`` says how fast
rounds may go.

Each message gets a *route*: ``bridge`` (the broker delivers it to the bridge, which must
dead-letter it with the expected reason, or forward it when it is valid),
``broker_acl`` (the broker must refuse it: PUBACK "Not authorized"; a device may publish
only to ``{root}/{its kind}/{its id}``, and the attacker device sends all of these),
``broker_disconnect`` (the broker must drop the connection: a control character in the
topic) or ``client_refuses`` (paho will not even send it: a wildcard in a topic name).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from gridwatch.contracts import KINDS, DeadLetterReason
from ingest.badinput import bad_inputs
from simulators.faults import malformed
from simulators.messages import TEMPLATES
from simulators.scenario import MALFORMED_CLASSES

BRIDGE, ACL, DISCONNECT, CLIENT = "bridge", "broker_acl", "broker_disconnect", "client_refuses"
READING = "reading"  # expected outcome of a valid message
REFUSED = "refused"  # expected outcome of a message the broker or client must stop
# Reasons given before the token bucket is touched (see ingest.decode, order of checks).
_FREE = {"topic_mismatch", "too_large", "unknown_device"}
ATTACK_SEQ0 = 900_000_000  # seq of attack payloads: a reading with it must never appear


@dataclass(frozen=True, slots=True)
class Send:
    """One MQTT publish of the sweep."""

    cls: str  # bad-input class, e.g. "decode:nan", "fault:oversize:rain", "acl:other-device"
    publisher: str  # the device login used
    topic: str
    payload: bytes
    expect: str  # a dead-letter reason, READING, or REFUSED
    route: str


@dataclass(frozen=True)
class Pools:
    """Which registered devices play which part."""

    honest: Mapping[str, Sequence[str]]  # kind → devices sending only valid readings
    bad: Mapping[str, Sequence[str]]  # kind → devices sending the catalogue
    flood: str  # floods past its rate limit
    dup: Sequence[str]  # send each reading twice
    other_water: str  # named in payloads as "another device"
    ghost: str  # has a broker login (as a water device), is not in the registry
    attacker: str  # publishes where the broker must refuse it

    def logins(self) -> set[str]:
        return set(self.kinds())

    def kinds(self) -> dict[str, str]:
        """Device id → the kind it is provisioned as, for every login of the sweep."""
        out = dict.fromkeys(
            [self.flood, *self.dup, self.other_water, self.ghost, self.attacker], "water"
        )
        for group in (self.honest, self.bad):
            for kind, devices in group.items():
                out.update(dict.fromkeys(devices, kind))
        return out


def make_pools(devices: Mapping[str, Sequence[str]], ghost: str) -> Pools:
    """Split each kind's devices: a few honest ones, the rest for bad input."""
    for kind in KINDS:
        if len(devices.get(kind, ())) < 2:
            raise ValueError(f"the sweep needs at least 2 registered {kind} devices")
    if len(devices["water"]) < 10:
        raise ValueError("the sweep needs at least 10 registered water devices")
    honest: dict[str, list[str]] = {}
    bad: dict[str, list[str]] = {}
    water = sorted(devices["water"])
    flood, other, attacker, dup = water[0], water[1], water[2], water[3:7]
    for kind in KINDS:
        ids = sorted(devices[kind])
        if kind == "water":
            ids = ids[7:]
        n_honest = max(1, min(4, len(ids) // 3))
        honest[kind], bad[kind] = ids[:n_honest], ids[n_honest:]
    return Pools(honest, bad, flood, dup, other, ghost, attacker)


def mqtt_route(topic: str, publisher: str, root: str, kind: str) -> str:
    """What paho or the broker does with ``publisher`` (a device of ``kind``) sending it.

    The broker lets a device publish to ``{root}/{kind}/{its id}`` only (see
    ``gridwatch.mosquitto_conf``).
    """
    if "+" in topic or "#" in topic:
        return CLIENT
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in topic):
        return DISCONNECT
    if topic == f"{root.rstrip('/')}/{kind}/{publisher}":
        return BRIDGE
    return ACL


def rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(int(epoch_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def good_body(kind: str, seq: int, t_epoch: float) -> str:
    """A valid payload of ``kind`` (the simulators' templates), at the second of
    ``t_epoch`` plus ``seq % 1000`` ms: readings of one device sent within one second
    are distinct InfluxDB points, as ingest requires (one point, the same values again:
    a duplicate; other values: a conflict, ``ingest/identity.py``)."""
    when = datetime.fromtimestamp(int(t_epoch), UTC) + timedelta(milliseconds=seq % 1000)
    ts = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if kind == "water":
        return TEMPLATES[kind] % (3.61, 4.2, -88.0, seq, ts)
    if kind == "rain":
        return TEMPLATES[kind] % (2.4, 0.2, seq, ts)
    if kind == "bike":
        return TEMPLATES[kind] % (30, 10, 8, 12, 69, seq, ts)
    if kind == "camera":
        return TEMPLATES[kind] % (3, 0, 12, 0, 4, 1, seq, ts, 0.05)
    return TEMPLATES[kind] % (3.9, "1.4.2", seq, ts, 86400)


class SeqCounter:
    """Per-device sequence numbers for valid readings (unique within a sweep)."""

    def __init__(self) -> None:
        self._next: Counter[str] = Counter()

    def __call__(self, device: str) -> int:
        self._next[device] += 1
        return self._next[device]


def round_sends(
    r: int,
    now_s: float,
    pools: Pools,
    root: str,
    rng: np.random.Generator,
    seq: SeqCounter,
) -> list[Send]:
    """Every message of round ``r`` (arrival expected around ``now_s``)."""
    root = root.rstrip("/")
    out: list[Send] = []

    kind_of = pools.kinds()
    attacker = pools.attacker

    def add(cls: str, publisher: str, topic: str, payload: bytes, expect: str) -> None:
        route = mqtt_route(topic, publisher, root, kind_of[publisher])
        if route in (ACL, CLIENT):
            publisher = attacker  # the sweep sends what the broker must refuse as the attacker
        out.append(
            Send(cls, publisher, topic, payload, expect if route == BRIDGE else REFUSED, route)
        )

    devs = {k: pools.bad[k][(r + i) % len(pools.bad[k])] for i, k in enumerate(KINDS)}
    logins = set(devs.values()) | {pools.ghost}
    for case in bad_inputs(
        now_s, devs, other_water=pools.other_water, unknown_water=pools.ghost, root=root
    ):
        # as the device the topic names when the broker lets it; else as the attacker
        last = case.topic.rsplit("/", 1)[-1]
        ok = last in logins and mqtt_route(case.topic, last, root, kind_of[last]) == BRIDGE
        publisher = last if ok else attacker
        add(f"decode:{case.name}", publisher, case.topic, case.payload, case.reason.value)
    kind = KINDS[r % len(KINDS)]
    bad = pools.bad[kind]
    t = int(now_s) - 30
    for j, cls in enumerate(sorted(MALFORMED_CLASSES)):
        device = bad[(r // len(KINDS) + j) % len(bad)]
        body = good_body(kind, ATTACK_SEQ0 + r, t)
        topic, payload = malformed(cls, kind, device, body, t, rfc3339, rng)
        publisher = device
        if cls == "unknown_device":
            topic, publisher = f"{root}/{kind}/{pools.ghost}", pools.ghost
        add(f"fault:{cls}:{kind}", publisher, topic, payload, MALFORMED_CLASSES[cls])
    # a valid reading sent twice: forwarded once, then dead-lettered as a duplicate
    twice = pools.dup[r % len(pools.dup)]
    dup = good_body("water", seq(twice), now_s - 5).encode()
    dup_topic = f"{root}/water/{twice}"
    add("duplicate:first", twice, dup_topic, dup, READING)
    add("duplicate", twice, dup_topic, dup, DeadLetterReason.DUPLICATE.value)
    # publishes the broker's ACL must refuse (attack seq: must never become a reading)
    attack = good_body("water", ATTACK_SEQ0 + r, now_s - 5).encode()
    victim = pools.honest["water"][r % len(pools.honest["water"])]
    rain_victim = pools.honest["rain"][r % len(pools.honest["rain"])]
    others = [k for k in KINDS if k != kind_of[attacker]]
    for name, topic in (
        ("acl:other-device", f"{root}/water/{victim}"),
        ("acl:other-device-other-kind", f"{root}/rain/{rain_victim}"),
        ("acl:own-id-other-kind", f"{root}/{others[r % len(others)]}/{attacker}"),
        ("acl:own-id-unknown-kind", f"{root}/smoke/{attacker}"),
        ("acl:outside-root", f"gw/v0/water/{attacker}"),
        ("acl:sys-topic", f"$SYS/broker/{attacker}"),
        ("acl:bare-root", root),
    ):
        add(name, attacker, topic, attack, REFUSED)
    # honest traffic: one valid reading per kind, round-robin over the honest devices
    for k in KINDS:
        honest = pools.honest[k][r % len(pools.honest[k])]
        add(
            f"valid:{k}",
            honest,
            f"{root}/{k}/{honest}",
            good_body(k, seq(honest), now_s - 2).encode(),
            READING,
        )
    return out


def token_load(sends: Sequence[Send]) -> Counter[str]:
    """Messages per device that take a token from its bucket at the bridge."""
    load: Counter[str] = Counter()
    for s in sends:
        if s.route == BRIDGE and s.expect not in _FREE:
            load[s.publisher] += 1
    return load


def rounds_per_s_max(pools: Pools, root: str, rate_per_s: float, sample: int = 60) -> float:
    """How many rounds per second keep every device under half its rate limit."""
    rng = np.random.default_rng(0)
    seq = SeqCounter()
    load: Counter[str] = Counter()
    for r in range(sample):
        load.update(token_load(round_sends(r, 1.8e9, pools, root, rng, seq)))
    busiest = max(load.values())
    return 0.5 * rate_per_s * sample / busiest


def flood_sends(pools: Pools, root: str, n: int, now_s: float, seq: SeqCounter) -> list[Send]:
    """``n`` valid readings from one device, faster than its rate limit allows."""
    topic = f"{root.rstrip('/')}/water/{pools.flood}"
    return [
        Send(
            "rate_limited",
            pools.flood,
            topic,
            good_body("water", seq(pools.flood), now_s - 10).encode(),
            DeadLetterReason.RATE_LIMITED.value,
            BRIDGE,
        )
        for _ in range(n)
    ]


# Logins the broker must refuse: (case, username or None, which password)
CONNECT_CASES: tuple[tuple[str, str, str], ...] = (
    ("anonymous", "", "none"),
    ("wrong-password", "device", "wrong"),
    ("unknown-user", "nobody", "wrong"),
    ("other-devices-password", "device", "other-device"),
    ("service-user-device-password", "service", "device"),
    ("empty-password", "device", "empty"),
)
# Subscriptions a device makes; the broker must refuse each (SUBACK 0x87, "Not
# authorized") and deliver nothing. (Joining the bridge's own share group is a separate
# phase: ``abuse_mqtt.run_hijack``.)
SUBSCRIBE_CASES: tuple[tuple[str, str], ...] = (
    ("everything", "#"),
    ("topic-root", "{root}/#"),
    ("other-device", "{root}/water/{victim}"),
    ("other-share-group", "$share/abuse-spies/{root}/#"),
    ("sys", "$SYS/#"),
)
