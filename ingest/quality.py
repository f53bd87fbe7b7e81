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
        "level_cm": GrossRange(-5.0, 300.0, -1.0, 150.0),  # as models/qc.py (streaming QC)
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


def _camera_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    counts = fields.get("counts")
    return {
        **(counts if isinstance(counts, dict) else {}),
        "water_cover": fields.get("water_cover"),
    }


def field_flags(kind: str, fields: Mapping[str, Any]) -> dict[str, QcFlag]:
    """The gross-range flag of each numeric field present in ``fields``."""
    table = GROSS_RANGES.get(kind, {})
    source: Mapping[str, Any] = fields
    if kind == "camera":
        source = _camera_values(fields)
    out: dict[str, QcFlag] = {}
    for name, rng in table.items():
        value = source.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = rng.flag(float(value))
    return out


# kind → ((field, range, auxiliary), ...): the table flattened once for the hot path.
_CHECKS: dict[str, tuple[tuple[str, GrossRange, bool], ...]] = {
    kind: tuple((name, rng, name in AUXILIARY.get(kind, ())) for name, rng in table.items())
    for kind, table in GROSS_RANGES.items()
}


def qc_flag(kind: str, fields: Mapping[str, Any]) -> QcFlag:
    """The QARTOD flag of one reading, given its contract fields as a dict."""
    status_flag = None
    source: Mapping[str, Any] = fields
    if kind == "camera":
        status = fields.get("status", "ok")
        status_flag = CAMERA_STATUS_FLAG.get(status) if isinstance(status, str) else None
        if status_flag is QcFlag.MISSING:
            return QcFlag.MISSING
        source = _camera_values(fields)
    worst = QcFlag.NOT_EVALUATED
    for name, rng, aux in _CHECKS.get(kind, ()):
        value = source.get(name)
        if value is None or value is True or value is False:
            continue
        if not isinstance(value, int | float):
            continue  # a wrong type is the contract's to reject, not a quality question
        flag = rng.flag(value)
        if aux:
            flag = QcFlag.SUSPECT if flag is QcFlag.FAIL else QcFlag.PASS
        worst = _worse(worst, flag)
    if kind == "bike":
        for flag in _bike_consistency(fields):
            worst = _worse(worst, flag)
    if status_flag is not None:
        worst = _worse(worst, status_flag)
    return worst


_RANK = {QcFlag.NOT_EVALUATED: 0, QcFlag.PASS: 1, QcFlag.SUSPECT: 2, QcFlag.FAIL: 3}


def _worse(a: QcFlag, b: QcFlag) -> QcFlag:
    return a if _RANK[a] >= _RANK[b] else b


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
