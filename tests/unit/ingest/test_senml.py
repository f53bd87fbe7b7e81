"""SenML (RFC 8428) packs: base-value resolution, names, units, times, round-trips."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.contracts import DeadLetterReason, QcFlag
from gridwatch.errors import ContractError
from gridwatch.registry import Registry
from ingest.decode import Decoder
from ingest.senml import resolve, to_senml

from .conftest import BIKE, CAMERA, NOW, NOW_S, RAIN, STATUS, WATER, js

BN = "urn:dev:gw:wl-00001:"


def test_resolution_follows_rfc8428_base_fields() -> None:
    pack = [
        {"bn": "urn:dev:gw:x:", "bt": 1.7e9, "bu": "cm", "bv": 10, "n": "level", "v": 1, "t": -5},
        {"n": "level", "v": 2},
        {"bn": "", "bu": "V", "n": "battery", "v": 3.6, "bv": 0},
        {"bt": 100, "n": "a", "u": "m", "vs": "x"},
    ]
    rs = resolve(pack)
    assert [(r.name, r.time_s, r.unit or r.base_unit, r.label, r.value) for r in rs] == [
        ("urn:dev:gw:x:level", 1.7e9 - 5, "cm", "v", 11),
        ("urn:dev:gw:x:level", 1.7e9, "cm", "v", 12),
        ("battery", 1.7e9, "V", "v", 3.6),
        ("a", 100.0, "m", "vs", "x"),
    ]


@pytest.mark.parametrize(
    ("unit", "value", "expected_cm"),
    [("cm", 12.5, 12.5), ("m", 0.125, 12.5), ("mm", 125, 12.5)],
)
def test_level_units_convert_to_cm(
    decoder: Decoder, unit: str, value: float, expected_cm: float
) -> None:
    [r] = decoder.decode(WATER, js([{"bn": BN, "n": "level", "u": unit, "v": value}]), NOW)
    assert r.level_cm == pytest.approx(expected_cm)


@pytest.mark.parametrize(
    ("topic", "record", "field", "expected"),
    [
        (WATER, {"n": "battery", "u": "mV", "v": 3600}, "battery_v", 3.6),
        (WATER, {"n": "rssi", "u": "dBW", "v": -120}, "rssi_dbm", -90.0),
        (RAIN, {"n": "rain", "u": "m", "v": 0.0012}, "rain_mm", 1.2),
        (RAIN, {"n": "intensity", "u": "m/s", "v": 1e-5}, "intensity_mm_h", 36.0),
        (RAIN, {"n": "intensity", "u": "m/h", "v": 0.03}, "intensity_mm_h", 30.0),
        (STATUS, {"n": "uptime", "u": "h", "v": 2}, "uptime_s", 7200),
        (STATUS, {"n": "uptime", "u": "s", "v": 12.9}, "uptime_s", 12),
        (STATUS, {"n": "firmware", "vs": "2.0.1"}, "firmware", "2.0.1"),
    ],
)
def test_unit_conversions(
    decoder: Decoder, topic: str, record: dict, field: str, expected: Any
) -> None:
    pack = [record] if topic != WATER else [{"n": "level", "u": "cm", "v": 1}, record]
    [r] = decoder.decode(topic, js(pack), NOW)
    assert getattr(r, field) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("topic", "record"),
    [
        (WATER, {"n": "level", "v": 3}),  # no unit: ambiguous
        (WATER, {"n": "level", "u": "in", "v": 3}),  # unit we do not convert
        (WATER, {"n": "level", "u": "Cel", "v": 3}),  # wrong dimension
        (RAIN, {"n": "rain", "u": "mm/h", "v": 3}),  # intensity unit on an amount
        (WATER, {"n": "level", "u": "cm", "vs": "3"}),  # number as string
        (WATER, {"n": "level", "u": "cm", "vb": True}),  # boolean as number
        (WATER, {"n": "level", "u": "cm", "v": True}),  # boolean in v
        (WATER, {"n": "level", "u": "cm", "v": "3"}),  # string in v
        (WATER, {"n": "level", "u": "cm", "s": 3}),  # sums are not used
        (WATER, {"n": "level", "u": "cm", "v": 3, "vs": "x"}),  # two values
        (WATER, {"n": "level", "u": "cm"}),  # no value
        (WATER, {"n": "depth", "u": "cm", "v": 3}),  # unknown name
        (WATER, {"n": "urn:dev:mac:0024befffe804ff1:level", "u": "cm", "v": 3}),
        (WATER, {"n": "urn:dev:gw:wl-00001", "u": "cm", "v": 3}),  # no field after device
        (WATER, {"n": "-level", "u": "cm", "v": 3}),  # invalid SenML name
        (WATER, {"n": "level", "u": "cm", "v": 3, "bver": 99}),  # unsupported version
        (WATER, {"n": "level", "u": "cm", "v": 3, "t": "now"}),  # time as text
        (WATER, {"n": "level", "u": "cm", "v": 3, "crit_": 1}),  # must-understand label
        (BIKE, {"n": "bikes", "v": 3.5}),  # fractional count
        (BIKE, {"n": "bikes", "v": -3}),  # negative count
        (STATUS, {"n": "uptime", "u": "h", "v": 1e300}),  # beyond 64 bits
        (CAMERA, {"n": "water_cover", "v": 0.3}),  # ratio without unit
        (CAMERA, {"n": "count/dog", "v": 1}),  # class we do not count
        (STATUS, {"n": "firmware", "v": 2}),  # number where text belongs
    ],
)
def test_bad_records_are_schema_errors(decoder: Decoder, topic: str, record: dict) -> None:
    with pytest.raises(ContractError) as info:
        decoder.decode(topic, js([record]), NOW)
    assert info.value.reason == DeadLetterReason.SCHEMA, info.value.detail


def test_bad_pack_shapes(decoder: Decoder) -> None:
    for pack in ([], [1], [{"n": "level", "u": "cm", "v": 1}, "x"]):
        with pytest.raises(ContractError, match="schema"):
            decoder.decode(WATER, js(pack), NOW)
    same_time_twice = [{"n": "level", "u": "cm", "v": 1}, {"n": "level", "u": "mm", "v": 1}]
    with pytest.raises(ContractError, match="twice"):
        decoder.decode(WATER, js(same_time_twice), NOW)


def test_unknown_optional_labels_are_ignored(decoder: Decoder) -> None:
    [r] = decoder.decode(WATER, js([{"n": "level", "u": "cm", "v": 2, "note": "x"}]), NOW)
    assert r.level_cm == 2


def test_several_times_give_several_readings_sorted(decoder: Decoder) -> None:
    bt = NOW_S - 300
    pack = [
        {"bn": BN, "bt": bt, "bu": "cm", "n": "level", "v": 5, "t": 120},
        {"n": "seq", "v": 12, "t": 120},
        {"n": "level", "v": 3, "t": 0},
        {"n": "seq", "v": 10},
        {"n": "level", "v": 4, "t": 60},
        {"n": "battery", "u": "V", "v": 3.61, "t": 60},
    ]
    rs = decoder.decode(WATER, js(pack), NOW)
    assert [r.level_cm for r in rs] == [3, 4, 5]
    assert [r.seq for r in rs] == [10, None, 12]
    assert [r.battery_v for r in rs] == [None, 3.61, None]
    assert [r.ts for r in rs] == [NOW - timedelta(seconds=s) for s in (300, 240, 180)]
    assert decoder.stats.readings == 3


def test_relative_times_count_from_arrival(decoder: Decoder) -> None:
    pack = [{"n": "level", "u": "cm", "v": 1, "t": -30}, {"n": "level", "u": "cm", "v": 2}]
    rs = decoder.decode(WATER, js(pack), NOW)
    assert [r.ts for r in rs] == [NOW - timedelta(seconds=30), NOW]


def test_pack_times_are_checked_record_by_record(decoder: Decoder) -> None:
    pack = [
        {"bn": BN, "bt": NOW_S, "n": "level", "u": "cm", "v": 1},
        {"n": "level", "u": "cm", "v": 2, "t": 3600},
    ]
    with pytest.raises(ContractError, match="future_ts"):
        decoder.decode(WATER, js(pack), NOW)


def test_bike_and_camera_names(decoder: Decoder) -> None:
    pack = [
        {"bn": "urn:dev:gw:bk-00001:", "n": "bikes", "u": "count", "v": 80},
        {"n": "capacity", "v": 69},
        {"n": "bikes/meituan", "v": 50},
        {"n": "bikes/hellobike", "v": 30},
    ]
    [b] = decoder.decode(BIKE, js(pack), NOW)
    assert (b.bikes, b.capacity, b.by_operator) == (80, 69, {"meituan": 50, "hellobike": 30})
    assert b.qc == QcFlag.PASS
    cam = [
        {"bn": "urn:dev:gw:cam-00001:", "n": "count/person", "v": 12},
        {"n": "count/vendor", "v": 2},
        {"n": "water_cover", "u": "%", "v": 35},
        {"n": "status", "vs": "degraded"},
    ]
    [c] = decoder.decode(CAMERA, js(cam), NOW)
    assert (c.counts.person, c.counts.vendor, c.counts.vehicle) == (12, 2, 0)
    assert c.water_cover == pytest.approx(0.35)
    assert (c.status, c.qc) == ("degraded", QcFlag.SUSPECT)


def test_camera_pack_without_measurements_is_flagged_missing(decoder: Decoder) -> None:
    [c] = decoder.decode(CAMERA, js([{"n": "status", "vs": "ok"}]), NOW)
    assert c.qc == QcFlag.MISSING


# -- round-trips --------------------------------------------------------------------

_finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
_count = st.integers(min_value=0, max_value=10_000)
_ts_ms = st.integers(min_value=int(NOW_S * 1000) - 86_400_000, max_value=int(NOW_S * 1000))

_READINGS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "water": st.fixed_dictionaries(
        {"level_cm": _finite, "seq": st.integers(0, 2**40)},
        optional={"battery_v": _finite, "rssi_dbm": _finite},
    ),
    "rain": st.fixed_dictionaries(
        {"rain_mm": st.floats(0, 1e4)}, optional={"intensity_mm_h": st.floats(0, 1e4)}
    ),
    "bike": st.fixed_dictionaries(
        {"bikes": _count, "capacity": st.integers(1, 10_000)},
        optional={
            "by_operator": st.dictionaries(
                st.from_regex(r"[a-z][a-z0-9]{0,15}", fullmatch=True), _count, max_size=4
            )
        },
    ),
    "camera": st.fixed_dictionaries(
        {"counts": st.fixed_dictionaries({}, optional={"person": _count, "bike": _count})},
        optional={
            "water_cover": st.floats(0, 1),
            "status": st.sampled_from(["ok", "degraded", "obstructed", "offline"]),
        },
    ),
    "status": st.fixed_dictionaries(
        {"uptime_s": st.integers(0, 10**9)},
        optional={
            "battery_v": _finite,
            "firmware": st.from_regex(r"[0-9.a-z-]{1,20}", fullmatch=True),
        },
    ),
}
_DEVICE = {
    "water": "wl-00001",
    "rain": "rg-00001",
    "bike": "bk-00001",
    "camera": "cam-00001",
    "status": "status-t1",
}


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(sorted(_READINGS)),
    data=st.data(),
)
def test_senml_round_trip(registry: Registry, kind: str, data: st.DataObject) -> None:
    times = data.draw(st.lists(_ts_ms, min_size=1, max_size=4, unique=True))
    readings = [{"ts_ms": t, **data.draw(_READINGS[kind])} for t in times]
    if kind == "camera":  # a camera reading with no measurement at all is flagged, not lost
        for r in readings:
            r["counts"] = r["counts"] or {"person": 0}
    device = _DEVICE[kind]
    pack = to_senml(kind, device, readings)
    decoder = Decoder(registry)
    out = decoder.decode(f"gw/v1/{kind}/{device}", js(pack), NOW)
    assert len(out) == len(readings)
    for got, want in zip(out, sorted(readings, key=lambda r: r["ts_ms"]), strict=True):
        assert got.ts.timestamp() * 1000 == pytest.approx(want["ts_ms"], abs=1)
        dumped = got.model_dump()
        for key, value in want.items():
            if key == "ts_ms":
                continue
            if key == "counts":
                assert {k: dumped["counts"][k] for k in value} == value
            else:
                assert dumped[key] == (pytest.approx(value) if isinstance(value, float) else value)
