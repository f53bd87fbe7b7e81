"""QARTOD-style gross-range quality flags, one table for every sensor class.

A reading that parses but is implausible is *flagged*, never dropped: downstream gates
on ``qc``. Flags follow QARTOD: 1 pass, 2 not evaluated, 3 suspect, 4 fail, 9 missing.

For each numeric field the table gives the sensor span (outside → FAIL) and the
plausible span for this city (outside → SUSPECT). A reading's flag is the worst of its
evaluated measurement fields (FAIL > SUSPECT > PASS; housekeeping fields such as a
water sensor's battery only make it SUSPECT, and only when impossible); a reading with
no evaluated field is NOT_EVALUATED; a reading whose primary measurement is missing
(a camera reporting ``offline``) is MISSING. Pure functions over plain field dicts:
no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gridwatch.contracts import QcFlag


@dataclass(frozen=True)
class GrossRange:
    """``fail_*``: the sensor's physical span; ``suspect_*``: what is plausible here."""

    fail_min: float
    fail_max: float
    suspect_min: float
    suspect_max: float

    def flag(self, value: float) -> QcFlag:
        if not self.fail_min <= value <= self.fail_max:
            return QcFlag.FAIL
        if not self.suspect_min <= value <= self.suspect_max:
            return QcFlag.SUSPECT
        return QcFlag.PASS


INF = float("inf")

# kind → field → range. Water depth: ultrasonic/pressure gauges read a few cm below zero
# when dry (noise), standing water above 1 m on a street is extraordinary, above 3 m is
# outside any kerbside sensor's span. Rain: 50 mm in one report interval (≤ 5 min) or
# 200 mm/h is extreme for Shanghai; above 500 mm / 1000 mm/h is instrument failure.
GROSS_RANGES: dict[str, dict[str, GrossRange]] = {
    "water": {
        "level_cm": GrossRange(-5.0, 300.0, -1.0, 100.0),
        "battery_v": GrossRange(0.0, 5.0, 3.0, 4.3),
        "rssi_dbm": GrossRange(-150.0, 0.0, -125.0, -30.0),
    },
    "rain": {
        "rain_mm": GrossRange(0.0, 500.0, 0.0, 50.0),
        "intensity_mm_h": GrossRange(0.0, 1000.0, 0.0, 200.0),
    },
    "bike": {
        "bikes": GrossRange(0.0, 5000.0, 0.0, 1000.0),
        "capacity": GrossRange(1.0, 5000.0, 1.0, 1000.0),
    },
    "camera": {
        "person": GrossRange(0.0, 2000.0, 0.0, 500.0),
        "vehicle": GrossRange(0.0, 1000.0, 0.0, 300.0),
        "bike": GrossRange(0.0, 2000.0, 0.0, 500.0),
        "vendor": GrossRange(0.0, 200.0, 0.0, 50.0),
        "garbage": GrossRange(0.0, 200.0, 0.0, 50.0),
        "road_occupation": GrossRange(0.0, 200.0, 0.0, 50.0),
        "water_cover": GrossRange(0.0, 1.0, 0.0, 1.0),
    },
    "status": {
        "battery_v": GrossRange(0.0, 5.0, 3.0, 4.3),
        "uptime_s": GrossRange(0.0, 10 * 365 * 86400.0, 0.0, 2 * 365 * 86400.0),
    },
}

# Bikes parked beyond capacity is the overflow we watch for, not a sensor fault; more than
# this many times the capacity is.
BIKE_SUSPECT_OVER_CAPACITY = 4.0
BIKE_FAIL_OVER_CAPACITY = 20.0

# Housekeeping fields: an impossible value (FAIL) makes the measurement questionable
# (the electronics are misbehaving) but a merely unusual one says nothing about it.
AUXILIARY: dict[str, frozenset[str]] = {
    "water": frozenset({"battery_v", "rssi_dbm"}),
}

CAMERA_STATUS_FLAG: dict[str, QcFlag] = {
    "degraded": QcFlag.SUSPECT,
    "obstructed": QcFlag.FAIL,
    "offline": QcFlag.MISSING,
}


def _worst(flags: list[QcFlag]) -> QcFlag:
    if not flags:
        return QcFlag.NOT_EVALUATED
    if QcFlag.FAIL in flags:
        return QcFlag.FAIL
    if QcFlag.SUSPECT in flags:
        return QcFlag.SUSPECT
    return QcFlag.PASS


def field_flags(kind: str, fields: Mapping[str, Any]) -> dict[str, QcFlag]:
    """The gross-range flag of each numeric field present in ``fields``."""
    table = GROSS_RANGES.get(kind, {})
    source: Mapping[str, Any] = fields
    if kind == "camera":
        counts = fields.get("counts") or {}
        source = {**counts, "water_cover": fields.get("water_cover")}
    out: dict[str, QcFlag] = {}
    for name, rng in table.items():
        value = source.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = rng.flag(float(value))
    return out


def qc_flag(kind: str, fields: Mapping[str, Any]) -> QcFlag:
    """The QARTOD flag of one reading, given its contract fields as a dict."""
    if kind == "camera":
        status_flag = CAMERA_STATUS_FLAG.get(fields.get("status", "ok"))
        if status_flag is QcFlag.MISSING:
            return QcFlag.MISSING
    aux = AUXILIARY.get(kind, frozenset())
    flags = []
    for name, flag in field_flags(kind, fields).items():
        if name not in aux:
            flags.append(flag)
        elif flag is QcFlag.FAIL:
            flags.append(QcFlag.SUSPECT)
    if kind == "bike":
        flags.extend(_bike_consistency(fields))
    if kind == "camera" and status_flag is not None:
        flags.append(status_flag)
    return _worst(flags)


def _bike_consistency(fields: Mapping[str, Any]) -> list[QcFlag]:
    bikes, capacity = fields.get("bikes"), fields.get("capacity")
    flags: list[QcFlag] = []
    if isinstance(bikes, int) and isinstance(capacity, int) and capacity > 0:
        ratio = bikes / capacity
        if ratio > BIKE_FAIL_OVER_CAPACITY:
            flags.append(QcFlag.FAIL)
        elif ratio > BIKE_SUSPECT_OVER_CAPACITY:
            flags.append(QcFlag.SUSPECT)
    by_operator = fields.get("by_operator")
    if isinstance(by_operator, dict) and by_operator and isinstance(bikes, int):
        total = sum(v for v in by_operator.values() if isinstance(v, int))
        if total != bikes:
            flags.append(QcFlag.SUSPECT)  # per-operator counts disagree with the total
    return flags
