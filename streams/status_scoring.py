"""Device status: battery level and trend, reboots, firmware — and when a battery will die.

Battery state per device is a tiny record: the newest voltage and time and a trend (V/h)
over about the last hour. The water job keeps the same record for its sensors
(their readings carry the battery too), which is how device health tells a *dead* sensor
(battery run down, or gone for hours) from a merely *silent* one.

``StatusScorer.score(readings, stored)`` returns per device and batch one assessment
(value = battery V; detail: trend V/h, hours left, reboots, firmware changes) and
maintenance alerts: a low or fast-falling battery opens a ``device_fault`` ticket before
the device goes dark; a healthy battery again clears it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gridwatch.contracts import (
    Alert,
    AlertKind,
    Assessment,
    QcFlag,
    StatusReading,
)
from gridwatch.registry import Registry
from streams.alerts import device_fault_alert

TREND_TAU_S = 3600.0
EMPTY_V = 3.0  # the cells are flat here: the device stops reporting
LOW_V = 3.3
WARN_HOURS = 24.0
RULE_VERSION = "battery-1"


def battery_update(doc: Mapping[str, float] | None, ts: float, volts: float | None) -> dict:
    """Fold one reading into a battery record ``{v, t, slope, span}``: newest volts and
    time, the trend (V/h) as an exponentially weighted mean of the step slopes with
    time constant ``TREND_TAU_S`` (steps telescope, so ADC noise cancels), and the hours
    the trend covers."""
    out = dict(doc or {})
    if volts is None or not math.isfinite(volts):
        return out
    if "t" in out and ts > out["t"]:
        dt = ts - out["t"]
        a = 1.0 - math.exp(-dt / TREND_TAU_S)
        step = (volts - out["v"]) / (dt / 3600.0)
        out["slope"] = (1.0 - a) * out.get("slope", 0.0) + a * step
        out["span"] = out.get("span", 0.0) + dt / 3600.0
    elif "t" in out:
        return out  # not newer: the record keeps its newest reading
    out["v"], out["t"] = float(volts), float(ts)
    return out


def battery_trend(doc: Mapping[str, float] | None) -> tuple[float, float]:
    """(newest volts, trend in V/h; 0 until the record spans half an hour)."""
    if not doc or "v" not in doc:
        return float("nan"), 0.0
    span_h = doc.get("span", 0.0)
    if span_h < 0.5:
        return float(doc["v"]), 0.0
    # the mean started at 0: divide by the weight the data has had so far
    weight = 1.0 - math.exp(-span_h * 3600.0 / TREND_TAU_S)
    return float(doc["v"]), float(doc.get("slope", 0.0) / weight)


def hours_left(volts: float, slope_v_h: float) -> float:
    """Hours until ``EMPTY_V`` at the current trend (inf when not falling)."""
    if not math.isfinite(volts):
        return math.inf
    if volts <= EMPTY_V:
        return 0.0
    return (volts - EMPTY_V) / -slope_v_h if slope_v_h < -1e-6 else math.inf


def battery_low(volts: float, slope_v_h: float) -> bool:
    return math.isfinite(volts) and (volts <= LOW_V or hours_left(volts, slope_v_h) < WARN_HOURS)


@dataclass
class StatusResult:
    states: dict[str, dict[str, Any]]
    assessments: list[Assessment]
    alerts: list[Alert] = field(default_factory=list)


class StatusScorer:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def score(
        self, readings: Sequence[StatusReading], stored: Mapping[str, Mapping[str, Any] | None]
    ) -> StatusResult:
        states: dict[str, dict[str, Any]] = {}
        newest: dict[str, StatusReading] = {}
        alerts: list[Alert] = []
        for r in readings:  # status readings are few and per-device sequential
            d = r.device_id
            st = states.get(d) or {k: v for k, v in (stored.get(d) or {}).items()}
            st["batt"] = battery_update(st.get("batt"), r.ts.timestamp(), r.battery_v)
            if r.uptime_s is not None:
                if r.uptime_s < st.get("uptime_s", -1.0):
                    st["reboots"] = st.get("reboots", 0) + 1
                st["uptime_s"] = float(r.uptime_s)
            if r.firmware is not None:
                if st.get("firmware") not in (None, r.firmware):
                    st["firmware_changes"] = st.get("firmware_changes", 0) + 1
                st["firmware"] = r.firmware
            low = battery_low(*battery_trend(st["batt"]))
            if low != bool(st.get("low", False)):
                alerts.append(self._alert(r, st["batt"], low))
            st["low"] = low
            states[d] = st
            newest[d] = r
        assessments = []
        for d, r in sorted(newest.items()):
            st = states[d]
            volts, slope = battery_trend(st["batt"])
            left = hours_left(volts, slope)
            assessments.append(
                Assessment(
                    device_id=d,
                    kind="status",
                    ts=r.ts,
                    grid_id=r.grid_id,
                    district_id=r.district_id,
                    value=volts if math.isfinite(volts) else None,
                    qc=QcFlag.SUSPECT if st["low"] else QcFlag.PASS,
                    risk=1.0 if st["low"] else 0.0,
                    model_version=RULE_VERSION,
                    detail={
                        "battery_trend_v_h": slope,
                        "hours_left": min(left, 24 * 365.0),
                        "reboots": float(st.get("reboots", 0)),
                        "firmware_changes": float(st.get("firmware_changes", 0)),
                    },
                )
            )
        return StatusResult(states, assessments, alerts)

    def _alert(self, r: StatusReading, batt: Mapping[str, float], low: bool) -> Alert:
        placement = self.registry.placement(r.device_id)
        volts, slope = battery_trend(batt)
        left = hours_left(volts, slope)
        kind: AlertKind = "maintenance" if low else "clear"
        if low:
            due = f", empty in ~{left:.0f} h" if math.isfinite(left) else ""
            why = f"{r.device_id}: battery low ({volts:.2f} V, {slope:+.3f} V/h{due})"
        else:
            why = f"{r.device_id}: battery healthy again ({volts:.2f} V)"
        return device_fault_alert(
            placement,
            ts=r.ts,
            kind=kind,
            tag=f"battery-{kind}",
            why=why,
            evidence={"battery_v": volts, "trend_v_h": slope},
            rule_version=RULE_VERSION,
        )
