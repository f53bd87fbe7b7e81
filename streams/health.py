"""Device health: which devices have gone silent, and how urgent that is.

A device that stopped reporting is *silent* (late: a radio dropout, a gateway down) or
*dead* (gone for ``DEAD_AFTER_S``, or its battery ran down — see
``streams.status_scoring``); a silent device that stays away long enough is reported
again as dead, on the same incident. Silence is judged in event time: against the newest
reading time the worker has seen (its watermark), a device is silent when it has not
reported for ``factor`` × its expected interval. A device whose clock runs far behind
looks the same in event time and is reported the same way (it needs a technician too). A
flood sensor going silent while its gauge measures heavy rain is urgent (it may have
been swamped or lost power when it matters most); in dry weather it is routine
maintenance. Both are ``device_fault`` tickets, never flood tickets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Literal

import numpy as np

from gridwatch.contracts import Alert, Severity
from gridwatch.registry import Placement
from streams.alerts import device_fault_alert
from streams.status_scoring import EMPTY_V, LOW_V, battery_trend

SILENT_FACTOR = 5.0
DEAD_AFTER_S = 6 * 3600.0  # gone this long: dead, whatever the battery said
HEAVY_RAIN_MM_H = 10.0
RULE_VERSION = "health-2"
Health = Literal["silent", "dead"]


def classify(silent_for_s: float, battery: Mapping[str, float] | None) -> tuple[Health, str]:
    """Silent (late: a radio dropout, a gateway down) or dead (long gone, or its battery
    ran down: last voltage low, or its trend says it is empty by now), and why."""
    volts, slope = battery_trend(battery)
    if silent_for_s >= DEAD_AFTER_S:
        return "dead", f"gone for {silent_for_s / 3600:.0f} h"
    if math.isfinite(volts):
        since_h = (silent_for_s) / 3600.0
        projected = volts + min(slope, 0.0) * since_h
        if volts <= LOW_V or projected <= EMPTY_V:
            return "dead", f"battery ran down (last {volts:.2f} V, {slope:+.2f} V/h)"
    return "silent", "battery fine" if math.isfinite(volts) else "no battery reading"


def partition_time(last_seen: Iterable[tuple[str, float]], newest: float) -> float:
    """The event time a partition's devices are judged against: the median of their
    newest readings (never past ``newest``), not the newest reading itself — a device
    whose clock runs minutes ahead, or one device's burst, must not make the rest of the
    partition look silent."""
    times = [t for _, t in last_seen if t == t]
    return min(newest, float(np.median(times))) if times else newest


def silent_devices(
    last_seen: Iterable[tuple[str, float]],
    interval_s: Mapping[str, float],
    watermark: float,
    factor: float = SILENT_FACTOR,
) -> list[tuple[str, float]]:
    """``(device, silent_for_s)`` of every device quiet for ``factor`` × its interval."""
    out = []
    for device, last in last_seen:
        if last != last:  # NaN: never reported
            continue
        quiet = watermark - last
        if quiet >= factor * interval_s.get(device, 60.0):
            out.append((device, quiet))
    return out


def silence_alert(
    placement: Placement,
    last_seen: float,
    silent_for_s: float,
    rain_mm_h: float,
    battery: Mapping[str, float] | None = None,
) -> Alert:
    """A device_fault alert for a device gone quiet: silent or dead (``classify``); in
    heavy rain urgent (critical), a dead device major, a silent one minor."""
    device = placement.device.device_id
    heavy = rain_mm_h >= HEAVY_RAIN_MM_H
    health, because = classify(silent_for_s, battery)
    minutes = silent_for_s / 60
    # In event time a device whose clock runs behind looks the same as a silent one;
    # both need a technician, and the why says so.
    quiet = f"{device} {health} ({because}): no reading for {minutes:.0f} min"
    if health == "silent":
        quiet += " (or its clock is behind)"
    why = f"{quiet} during heavy rain ({rain_mm_h:.0f} mm/h): urgent" if heavy else quiet
    severity = (
        Severity.CRITICAL if heavy else Severity.MAJOR if health == "dead" else Severity.MINOR
    )
    return device_fault_alert(
        placement,
        ts=datetime.fromtimestamp(last_seen + silent_for_s, tz=UTC),
        kind="maintenance",
        tag=health,
        why=why,
        evidence={"last_seen": last_seen, "rain_mm_h": rain_mm_h, "health": health},
        rule_version=RULE_VERSION,
        severity=severity,
        id_ms=int(last_seen * 1000),
    )


def back_alert(placement: Placement, ts: datetime) -> Alert:
    return device_fault_alert(
        placement,
        ts=ts,
        kind="clear",
        tag="back",
        why=f"{placement.device.device_id} reporting again",
        evidence={},
        rule_version=RULE_VERSION,
    )
