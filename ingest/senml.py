"""SenML packs (RFC 8428, JSON) → draft readings, and readings → SenML.

Resolution (RFC 8428 §4.6): base fields ``bn bt bu bv bs bver`` apply to their record
and every later one until replaced; name = ``bn + n``; time = ``bt + t`` in seconds,
where a resolved time below 2**28 is relative to now (the arrival time); unit = ``u``
else ``bu``; value = ``bv + v``. Labels ending in ``_`` must be understood, so unknown
ones are rejected; other unknown labels are ignored, as the RFC asks.

Names. A resolved name is either ``urn:dev:gw:{device_id}:{name}`` (the device must be
the topic's device) or a bare ``{name}``. The usual shape is
``{"bn": "urn:dev:gw:wl-00001:", "n": "level", "u": "cm", "v": 3.2}``.

======  ====================  =====================================  ==========
kind    SenML name            unit → contract field                   value
======  ====================  =====================================  ==========
water   level                 cm, m (×100), mm (×0.1) → level_cm     v
water   battery               V, mV (×0.001) → battery_v             v
water   rssi                  dBm, dBW (+30) → rssi_dbm              v
rain    rain                  mm, m (×1000) → rain_mm                v
rain    intensity             mm/h, m/h (×1000), m/s (×3.6e6)        v
                              → intensity_mm_h
bike    bikes                 none or count → bikes                  v integral
bike    capacity              none or count → capacity               v integral
bike    bikes/{operator}      none or count → by_operator[operator]  v integral
camera  count/{class}         none or count → counts[class]          v integral
camera  water_cover           / (ratio), % (×0.01) → water_cover     v
camera  status                (none) → status                        vs
status  battery               V, mV (×0.001) → battery_v             v
status  uptime                s, min (×60), h (×3600) → uptime_s     v (floored)
status  firmware              (none) → firmware                      vs
any     seq                   none → seq                             v integral
======  ====================  =====================================  ==========

A quantity with a dimension needs a unit (``u`` or ``bu``): without one it is
ambiguous and rejected, as is any unit not listed. Records sharing a resolved time form
one reading; several times give several readings, sorted by time. Sum values (``s``)
and data/boolean values (``vd``, ``vb``) are not used by any of our names → schema.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NamedTuple

from gridwatch.contracts import CAMERA_CLASSES, DeadLetterReason
from gridwatch.errors import ContractError
from ingest.native import Draft
from ingest.strictjson import INT64_MAX

URN_PREFIX = "urn:dev:gw:"
RELATIVE_LIMIT_S = 2**28  # RFC 8428 §4.5.3
MAX_RECORDS = 512
SUPPORTED_VERSION = 10
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*", re.ASCII)  # RFC 8428 §4.5.1
_OPERATOR_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", re.ASCII)
_STR: tuple[type, ...] = (str,)
_NUM: tuple[type, ...] = (int, float)
_BOOL: tuple[type, ...] = (bool,)
_INT: tuple[type, ...] = (int,)
_LABEL_TYPES: dict[str, tuple[type, ...]] = {
    **dict.fromkeys(("bn", "bu", "n", "u", "vs", "vd"), _STR),
    **dict.fromkeys(("bt", "bv", "bs", "t", "v", "s", "ut"), _NUM),
    "vb": _BOOL,
    "bver": _INT,
}
_TYPE_NAMES = {_STR: "a string", _NUM: "a number", _BOOL: "a boolean", _INT: "an integer"}


@dataclass(frozen=True)
class Quantity:
    """How one SenML name becomes one contract field."""

    target: str  # contract field; "counts.{x}" / "by_operator.{x}" for map entries
    # unit (None: no unit) → (factor, offset) to our unit; keys typed Any so that literal
    # tables with only str keys type-check (dict keys are invariant).
    units: dict[Any, tuple[float, float]]
    value: str = "v"  # "v" number, "vs" string
    integral: str = ""  # "" float, "exact" must be whole, "floor" rounded down


_COUNT = {None: (1.0, 0.0), "count": (1.0, 0.0)}
_VOLT = {"V": (1.0, 0.0), "mV": (0.001, 0.0)}
_SEQ = Quantity("seq", {None: (1.0, 0.0)}, integral="exact")

QUANTITIES: dict[str, dict[str, Quantity]] = {
    "water": {
        "level": Quantity("level_cm", {"cm": (1.0, 0.0), "m": (100.0, 0.0), "mm": (0.1, 0.0)}),
        "battery": Quantity("battery_v", _VOLT),
        "rssi": Quantity("rssi_dbm", {"dBm": (1.0, 0.0), "dBW": (1.0, 30.0)}),
        "seq": _SEQ,
    },
    "rain": {
        "rain": Quantity("rain_mm", {"mm": (1.0, 0.0), "m": (1000.0, 0.0)}),
        "intensity": Quantity(
            "intensity_mm_h",
            {"mm/h": (1.0, 0.0), "m/h": (1000.0, 0.0), "m/s": (3.6e6, 0.0)},
        ),
        "seq": _SEQ,
    },
    "bike": {
        "bikes": Quantity("bikes", _COUNT, integral="exact"),
        "capacity": Quantity("capacity", _COUNT, integral="exact"),
        "seq": _SEQ,
    },
    "camera": {
        **{
            f"count/{cls}": Quantity(f"counts.{cls}", _COUNT, integral="exact")
            for cls in CAMERA_CLASSES
        },
        "water_cover": Quantity("water_cover", {"/": (1.0, 0.0), "%": (0.01, 0.0)}),
        "status": Quantity("status", {None: (1.0, 0.0)}, value="vs"),
        "seq": _SEQ,
    },
    "status": {
        "battery": Quantity("battery_v", _VOLT),
        "uptime": Quantity(
            "uptime_s", {"s": (1.0, 0.0), "min": (60.0, 0.0), "h": (3600.0, 0.0)}, integral="floor"
        ),
        "firmware": Quantity("firmware", {None: (1.0, 0.0)}, value="vs"),
        "seq": _SEQ,
    },
}
_BIKE_OPERATOR_UNITS = Quantity("by_operator.", _COUNT, integral="exact")


def _schema(detail: str) -> ContractError:
    return ContractError(DeadLetterReason.SCHEMA, detail)


class Resolved(NamedTuple):
    """One record after base-value resolution (RFC 8428 §4.6)."""

    name: str
    time_s: float
    unit: str | None  # the record's own ``u``
    base_unit: str | None  # ``bu`` in force; the unit when ``u`` is absent
    label: str  # which value field: "v", "vs", "vb", "vd" or "s"
    value: Any


def resolve(pack: list[Any]) -> list[Resolved]:
    """Resolve a SenML pack; raise ``ContractError`` if it is not valid SenML."""
    if not pack:
        raise _schema("empty SenML pack")
    if len(pack) > MAX_RECORDS:
        raise _schema(f"more than {MAX_RECORDS} SenML records")
    bn, bu, bt, bv, bs = "", None, 0.0, None, None
    out: list[Resolved] = []
    for i, rec in enumerate(pack):
        if not isinstance(rec, dict):
            raise _schema(f"SenML record {i} is not an object")
        _check_labels(i, rec)
        if "bver" in rec:
            ver = rec["bver"]
            if type(ver) is not int or not 1 <= ver <= SUPPORTED_VERSION:
                raise _schema(f"SenML record {i}: unsupported bver {ver!r}")
        bn = rec.get("bn", bn)
        bu = rec.get("bu", bu)
        bt = rec.get("bt", bt)
        bv = rec.get("bv", bv)
        bs = rec.get("bs", bs)
        name = bn + rec.get("n", "")
        if not _NAME_RE.fullmatch(name):
            raise _schema(f"SenML record {i}: invalid name {name[:60]!r}")
        labels = [k for k in ("v", "vs", "vb", "vd", "s") if k in rec]
        if len(labels) != 1:
            raise _schema(f"SenML record {i}: needs exactly one of v, vs, vb, vd, s")
        label = labels[0]
        value = rec[label]
        if label == "v" and bv is not None:
            value = value + bv
        elif label == "s" and bs is not None:
            value = value + bs
        if isinstance(value, float) and math.isinf(value):
            raise ContractError(DeadLetterReason.NON_FINITE, f"SenML record {i}: value overflows")
        time_s = bt + rec.get("t", 0.0)
        if math.isinf(time_s):
            raise ContractError(DeadLetterReason.NON_FINITE, f"SenML record {i}: time overflows")
        out.append(Resolved(name, float(time_s), rec.get("u"), bu, label, value))
    return out


def _check_labels(i: int, rec: dict[str, Any]) -> None:
    for key, value in rec.items():
        want = _LABEL_TYPES.get(key)
        if want is None:
            if key.endswith("_"):
                raise _schema(f"SenML record {i}: must-understand label {key[:30]!r}")
        elif type(value) not in want:  # exact types: a bool is not a number here
            raise _schema(f"SenML record {i}: {key} must be {_TYPE_NAMES[want]}")


def _local_name(name: str, device_id: str) -> str:
    if name.startswith(URN_PREFIX):
        rest = name[len(URN_PREFIX) :]
        dev, sep, local = rest.partition(":")
        if not sep or not local:
            raise _schema(f"SenML name {name[:80]!r} lacks a field after the device id")
        if dev != device_id:
            raise ContractError(
                DeadLetterReason.TOPIC_MISMATCH,
                f"SenML name names device {dev[:64]!r}, topic says {device_id}",
            )
        return local
    if ":" in name:
        raise _schema(f"SenML name {name[:80]!r}: expected {URN_PREFIX}{{device}}:{{field}}")
    return name


def _quantity(kind: str, local: str) -> tuple[Quantity, str]:
    qty = QUANTITIES[kind].get(local)
    if qty is not None:
        return qty, qty.target
    if kind == "bike" and local.startswith("bikes/"):
        operator = local[len("bikes/") :]
        if _OPERATOR_RE.fullmatch(operator):
            return _BIKE_OPERATOR_UNITS, "by_operator." + operator
    raise _schema(f"SenML name {local[:60]!r} is not a {kind} quantity")


def _convert(qty: Quantity, local: str, rec: Resolved) -> Any:
    if rec.label != qty.value:
        raise _schema(f"SenML {local!r} needs a {qty.value} value, got {rec.label}")
    unit = rec.unit
    if unit is None and not (None in qty.units and rec.base_unit not in qty.units):
        # A base unit is the default of records without "u"; a dimensionless quantity
        # (seq, counts, text) in a pack whose bu is "cm" is not in centimetres.
        unit = rec.base_unit
    conv = qty.units.get(unit)
    if conv is None:
        unit = "no unit" if unit is None else f"unit {unit[:16]!r}"
        raise _schema(f"SenML {local!r}: {unit} is not accepted")
    if qty.value == "vs":
        return rec.value
    factor, offset = conv
    value = rec.value * factor + offset if (factor, offset) != (1.0, 0.0) else rec.value
    if isinstance(value, float) and math.isinf(value):
        raise ContractError(DeadLetterReason.NON_FINITE, f"SenML {local!r} overflows")
    if qty.integral == "exact":
        if isinstance(value, float):
            if not value.is_integer():
                raise _schema(f"SenML {local!r} must be a whole number")
            value = int(value)
    elif qty.integral == "floor":
        value = math.floor(value)
    if qty.integral and not 0 <= value <= INT64_MAX:
        raise _schema(f"SenML {local!r} must be a whole number in 0..2**63-1")
    return value


def pack_drafts(kind: str, device_id: str, pack: list[Any], received_ms: float) -> list[Draft]:
    """Map a SenML pack to drafts, one per distinct resolved time, sorted by time."""
    groups: dict[float, Draft] = {}
    for rec in resolve(pack):
        local = _local_name(rec.name, device_id)
        qty, target = _quantity(kind, local)
        value = _convert(qty, local, rec)
        absolute = rec.time_s >= RELATIVE_LIMIT_S
        ts_ms = rec.time_s * 1000.0 if absolute else received_ms + rec.time_s * 1000.0
        draft = groups.get(ts_ms)
        if draft is None:
            draft = groups[ts_ms] = Draft(ts_ms=ts_ms, absolute=absolute)
            if kind == "camera":
                draft.fields["counts"] = {}
        _assign(draft, target, value, local)
    drafts = [groups[t] for t in sorted(groups)]
    if kind == "camera":
        for draft in drafts:
            draft.measured = bool(draft.fields["counts"]) or "water_cover" in draft.fields
    return drafts


def _assign(draft: Draft, target: str, value: Any, local: str) -> None:
    head, dot, key = target.partition(".")
    if dot:
        bucket = draft.fields.setdefault(head, {})
        if key in bucket:
            raise _schema(f"SenML {local!r} appears twice at one time")
        bucket[key] = value
    else:
        if target in draft.fields:
            raise _schema(f"SenML {local!r} appears twice at one time")
        draft.fields[target] = value


# -- readings → SenML (for devices, simulators and round-trip tests) ----------------

_CANONICAL_UNIT: dict[str, str | None] = {
    "level_cm": "cm",
    "battery_v": "V",
    "rssi_dbm": "dBm",
    "rain_mm": "mm",
    "intensity_mm_h": "mm/h",
    "water_cover": "/",
    "uptime_s": "s",
}


def to_senml(kind: str, device_id: str, readings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A SenML pack for ``readings`` (dicts with ``ts_ms`` and contract fields)."""
    names = {q.target: n for n, q in QUANTITIES[kind].items()}
    pack: list[dict[str, Any]] = []
    for reading in readings:
        t = reading["ts_ms"] / 1000.0
        for key, value in reading.items():
            if key == "ts_ms" or value is None:
                continue
            entries = (
                [(f"{key}.{k}", v) for k, v in value.items()]
                if isinstance(value, dict)
                else [(key, value)]
            )
            for target, val in entries:
                name = names.get(target)
                if name is None and target.startswith("by_operator."):
                    name = "bikes/" + target.partition(".")[2]
                if name is None:
                    raise ValueError(f"no SenML name for {kind} field {target!r}")
                rec: dict[str, Any] = {"n": name, "t": t}
                unit = _CANONICAL_UNIT.get(target)
                if unit is not None:
                    rec["u"] = unit
                rec["vs" if isinstance(val, str) else "v"] = val
                pack.append(rec)
    if pack:
        pack[0]["bn"] = f"{URN_PREFIX}{device_id}:"
    return pack
