"""When two readings are the same point, and when they say the same thing.

InfluxDB stores a reading as one point per series (measurement = kind; tags = device,
grid, district, fixed per device) and event time in ms; a second write of that point overwrites the
first (DESIGN.md, InfluxDB). So a reading's *identity* is its device and its event time
truncated to the ms, exactly as ``streams/influx_sink.py`` computes the point time
(``point_ms``; a unit test holds the two together). A reading whose event time was
derived from the arrival time (a SenML pack with relative times) has no stable identity
of its own; it is identified by its ``seq`` if it has one, else not at all.

A reading's *content* is its measured values: the kind's contract fields, nothing else.
``seq``, ``qc`` (derived from the values), ``received_at``, ``origin`` and the raw bytes
are not content, so a JSON message and a SenML pack carrying the same values at the same
time are the same reading (a duplicate), while a different ``level_cm`` at the same time
is a conflict. Content is packed into a few bytes per reading so the guards can keep it
in a fixed-size ring (``ingest.guards``):

* floats are packed as they are (``-0.0`` as ``0.0``); an absent optional field is NaN
  (the contracts forbid NaN, so it cannot collide with a value). Two contents are the
  same when their bytes are, or else (``same``, off the hot path: only for a point seen
  before) when every float agrees within 1e-9, relative or absolute, in the contract
  unit: unit-conversion error such as 0.032 m × 100 = 3.2000000000000006 cm is no
  difference, and no sensor resolves anything finer;
* whole numbers are packed as they are; absent is -1 (all our counts are >= 0);
* text and maps (``status``, ``firmware``, ``by_operator``) are packed as their 64-bit
  hash: a conflict names them as differing but cannot show their earlier value (and a
  hash collision, odds 2**-64, would take two different texts for the same).

An optional field present in one reading and absent in the other is a difference: two
sources that disagree about what was measured at one instant are reported, not merged.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

from gridwatch.contracts import (
    CAMERA_CLASSES,
    BikeReading,
    CameraReading,
    RainReading,
    ReadingBase,
    StatusReading,
    WaterReading,
)

_NAN = math.nan
_ABSENT = -1


def point_ms(reading: ReadingBase) -> int:
    """The reading's InfluxDB point time (must equal ``streams.influx_sink._ms``)."""
    return int(reading.ts.timestamp() * 1000)


def identity(seq: int | None, ms: int | None) -> int | None:
    """Identity key of a reading: its point time if absolute, else its seq, else None.

    ``ms`` None means the event time was derived from the arrival time. Keys never equal
    -1 (CPython's ``hash`` never returns it), which ``ingest.guards`` uses as empty.
    """
    if ms is not None:
        return hash((ms, None))
    if seq is not None:
        return hash(("seq", seq))
    return None


TOLERANCE = 1e-9


# kind → (field names, struct format); "d" float, "q" whole number, "h" hashed value
LAYOUTS: dict[str, tuple[tuple[str, ...], str]] = {
    "water": (("level_cm", "battery_v", "rssi_dbm"), "ddd"),
    "rain": (("rain_mm", "intensity_mm_h"), "dd"),
    "bike": (("bikes", "capacity", "by_operator"), "qqh"),
    "camera": ((*CAMERA_CLASSES, "water_cover", "status"), "q" * len(CAMERA_CLASSES) + "dh"),
    "status": (("battery_v", "uptime_s", "firmware"), "dqh"),
}
_STRUCTS = {kind: struct.Struct("<" + fmt.replace("h", "q")) for kind, (_, fmt) in LAYOUTS.items()}


# The packers run once per reading: no helper calls, no rounding (see ``same``).


def _water(r: Any) -> bytes:
    w: WaterReading = r
    b, s = w.battery_v, w.rssi_dbm
    return _STRUCTS["water"].pack(
        w.level_cm + 0.0, _NAN if b is None else b + 0.0, _NAN if s is None else s + 0.0
    )


def _rain(r: Any) -> bytes:
    w: RainReading = r
    a, i = w.rain_mm, w.intensity_mm_h
    return _STRUCTS["rain"].pack(_NAN if a is None else a + 0.0, _NAN if i is None else i + 0.0)


def _bike(r: Any) -> bytes:
    b: BikeReading = r
    ops = hash(frozenset(b.by_operator.items())) if b.by_operator else 0
    return _STRUCTS["bike"].pack(b.bikes, b.capacity, ops)


def _camera(r: Any) -> bytes:
    c: CameraReading = r
    n = c.counts
    return _STRUCTS["camera"].pack(
        n.person,
        n.vehicle,
        n.bike,
        n.vendor,
        n.garbage,
        n.road_occupation,
        _NAN if c.water_cover is None else c.water_cover + 0.0,
        hash(c.status),
    )


def _status(r: Any) -> bytes:
    s: StatusReading = r
    b, u = s.battery_v, s.uptime_s
    return _STRUCTS["status"].pack(
        _NAN if b is None else b + 0.0, _ABSENT if u is None else u, hash(s.firmware)
    )


_PACKERS: dict[str, Callable[[Any], bytes]] = {
    "water": _water,
    "rain": _rain,
    "bike": _bike,
    "camera": _camera,
    "status": _status,
}


def content(reading: ReadingBase) -> bytes:
    """The reading's measured values, packed (8 bytes per field of its kind)."""
    return _PACKERS[reading.kind](reading)


def content_size(kind: str) -> int:
    return _STRUCTS[kind].size


def _same_field(code: str, a: float | int, b: float | int) -> bool:
    if a == b:
        return True
    if code != "d":
        return False
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)


def same(kind: str, a: bytes, b: bytes) -> bool:
    """Whether two packed contents of ``kind`` say the same (floats within 1e-9)."""
    if a == b:
        return True
    _, fmt = LAYOUTS[kind]
    unpack = _STRUCTS[kind].unpack
    return all(_same_field(*f) for f in zip(fmt, unpack(a), unpack(b), strict=True))


def _show(code: str, value: float | int) -> str:
    if code == "d":
        return "absent" if math.isnan(value) else f"{value:g}"
    return "absent" if value == _ABSENT else str(value)


def describe_conflict(kind: str, new: bytes, earlier: bytes) -> str:
    """``level_cm 3.5 (earlier 3.2)``: every field whose packed value differs."""
    names, fmt = LAYOUTS[kind]
    unpack = _STRUCTS[kind].unpack
    parts = []
    for name, code, a, b in zip(names, fmt, unpack(new), unpack(earlier), strict=True):
        if _same_field(code, a, b):
            continue
        if code == "h":
            parts.append(f"{name} differs (earlier value not kept)")
        else:
            parts.append(f"{name} {_show(code, a)} (earlier {_show(code, b)})")
    return ", ".join(parts) or "values differ"
