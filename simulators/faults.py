"""Device faults: a seeded plan of lasting faults and the bad-input catalogue.

Lasting faults are drawn per device when the run starts (``FaultPlan``): stuck value,
drift, dropout (silence, the sequence number keeps counting), battery decay then death,
clock skew. Per-message faults are drawn as messages go out: spike (on the value),
duplicate send, out-of-order delivery, and malformed payloads of every class of the
Ingest issue's catalogue (``simulators.scenario.MALFORMED_CLASSES`` names each with the
dead-letter reason ingest is expected to give).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulators.scenario import MALFORMED_CLASSES, FaultSpec

INF = math.inf
# Which kinds each lasting fault can hit.
STUCK_KINDS = ("water", "rain", "bike", "camera")
DRIFT_KINDS = ("water",)
BATTERY_KINDS = ("water", "status")
MAIN_FIELD = {
    "water": "level_cm",
    "rain": "rain_mm",
    "bike": "bikes",
    "camera": "water_cover",
    "status": "battery_v",
}


@dataclass
class KindFaults:
    """Lasting-fault windows for the devices of one kind (seconds from run start)."""

    stuck: tuple[np.ndarray, np.ndarray]
    drift: tuple[np.ndarray, np.ndarray]
    drift_cm_h: np.ndarray
    dropout: tuple[np.ndarray, np.ndarray]
    death_s: np.ndarray  # battery empty: silent from then on
    decline_s: np.ndarray  # battery starts to fall
    skew_s: np.ndarray  # clock offset added to ts (0 = none)

    def in_window(self, window: tuple[np.ndarray, np.ndarray], idx: np.ndarray, t: float):
        a, b = window
        return (a[idx] <= t) & (t < b[idx])


@dataclass
class FaultPlan:
    spec: FaultSpec
    kinds: dict[str, KindFaults]
    log: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def draw(
        cls,
        spec: FaultSpec,
        devices: dict[str, list[str]],
        run_s: float,
        rng: np.random.Generator,
        start_epoch: int,
        fmt: Any,
    ) -> FaultPlan:
        plan = cls(spec, {})
        for kind, ids in devices.items():
            n = len(ids)

            def window(
                rate: float,
                allowed: bool,
                name: str,
                ids: list[str] = ids,
                n: int = n,
                kind: str = kind,
            ) -> tuple[np.ndarray, np.ndarray]:
                if not allowed or rate <= 0:
                    return (np.full(n, INF), np.full(n, INF))
                hit = rng.random(n) < rate
                a = np.where(hit, rng.uniform(0, run_s * 0.8, n), INF)
                b = a + rng.exponential(spec.fault_duration, n)
                for i in np.flatnonzero(hit):
                    plan.log.append(
                        {
                            "fault": name,
                            "device_id": ids[i],
                            "kind": kind,
                            "start": fmt(start_epoch + int(a[i])),
                            "end": fmt(start_epoch + int(b[i])) if b[i] < run_s else None,
                        }
                    )
                return a, b

            stuck = window(spec.stuck, kind in STUCK_KINDS, "stuck")
            drift = window(spec.drift, kind in DRIFT_KINDS, "drift")
            drift_rate = rng.uniform(2.0, 12.0, n)
            dropout = window(spec.dropout, True, "dropout")
            death = np.full(n, INF)
            decline = np.full(n, INF)
            if kind in BATTERY_KINDS and spec.battery_death > 0:
                hit = rng.random(n) < spec.battery_death
                death = np.where(hit, rng.uniform(0.3, 0.95, n) * run_s, INF)
                decline = np.maximum(death - rng.uniform(1800, 4 * 3600, n), 0.0)
                for i in np.flatnonzero(hit):
                    plan.log.append(
                        {
                            "fault": "battery_death",
                            "device_id": ids[i],
                            "kind": kind,
                            "start": fmt(start_epoch + int(decline[i])),
                            "end": None,
                            "detail": {"dead_at": fmt(start_epoch + int(death[i]))},
                        }
                    )
            skew = np.zeros(n)
            if spec.clock_skew > 0:
                hit = rng.random(n) < spec.clock_skew
                mag = rng.uniform(60, 3 * 3600, n) * np.where(rng.random(n) < 0.5, -1, 1)
                skew = np.where(hit, np.rint(mag), 0.0)
                for i in np.flatnonzero(hit):
                    plan.log.append(
                        {
                            "fault": "clock_skew",
                            "device_id": ids[i],
                            "kind": kind,
                            "start": fmt(start_epoch),
                            "end": None,
                            "detail": {"skew_s": int(skew[i])},
                        }
                    )
            plan.kinds[kind] = KindFaults(stuck, drift, drift_rate, dropout, death, decline, skew)
        return plan


# -- the bad-input catalogue ----------------------------------------------------------


def _with_field(body: str, key: str, literal: str) -> str:
    """``body`` with the JSON value of ``key`` replaced by ``literal`` (raw text)."""
    doc = json.loads(body)
    doc[key] = "\x00MARK\x00"
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return text.replace('"\\u0000MARK\\u0000"', literal)


def malformed(
    cls: str,
    kind: str,
    device_id: str,
    body: str,
    t_epoch: int,
    fmt: Any,
    rng: np.random.Generator,
) -> tuple[str, bytes]:
    """A bad message of class ``cls`` derived from a good one: (topic, payload bytes)."""
    if cls not in MALFORMED_CLASSES:
        raise ValueError(f"unknown malformed class {cls!r}")
    topic = f"gw/v1/{kind}/{device_id}"
    key = MAIN_FIELD[kind]
    if cls == "malformed_json":
        cut = int(rng.integers(1, max(len(body) - 1, 2)))
        return topic, body[:cut].encode()
    if cls == "nan":
        return topic, _with_field(body, key, "NaN").encode()
    if cls == "infinity":
        return topic, _with_field(
            body, key, "Infinity" if rng.random() < 0.5 else "-Infinity"
        ).encode()
    if cls == "huge_number":
        return topic, _with_field(body, key, "1e400").encode()
    if cls == "duplicate_keys":
        return topic, (body[:-1] + f',"{key}":0}}').encode()
    if cls == "number_as_string":
        value = json.loads(body)[key]
        return topic, _with_field(body, key, json.dumps(str(value))).encode()
    if cls == "bool_as_number":
        return topic, _with_field(body, key, "true").encode()
    if cls == "deep_nesting":
        depth = 200
        return topic, _with_field(body, "extra", "[" * depth + "1" + "]" * depth).encode()
    if cls == "non_utf8":
        raw = _with_field(body, "note", '"\x00BAD\x00"').encode()
        return topic, raw.replace(b"\x00BAD\x00", b"\xff\xfe\xc3(")
    if cls == "oversize":
        return topic, _with_field(body, "pad", json.dumps("x" * 17_000)).encode()
    if cls == "unknown_device":
        ghost = f"ghost-{int(rng.integers(100_000)):05d}"
        return f"gw/v1/{kind}/{ghost}", body.encode()
    if cls == "topic_mismatch":
        others = [k for k in MAIN_FIELD if k != kind]
        other = others[int(rng.integers(len(others)))]
        return f"gw/v1/{other}/{device_id}", body.encode()
    if cls == "future_ts":
        return topic, _with_field(body, "ts", json.dumps(fmt(t_epoch + 86_400))).encode()
    # stale_ts
    return topic, _with_field(body, "ts", json.dumps(fmt(t_epoch - 30 * 86_400))).encode()
