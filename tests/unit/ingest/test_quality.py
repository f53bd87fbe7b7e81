"""QARTOD gross-range flags: the table, the combination rule, and flags on decoded readings."""

from __future__ import annotations

from typing import Any

import pytest

from gridwatch.contracts import KINDS, READING_TYPES, QcFlag
from ingest.decode import Decoder
from ingest.quality import GROSS_RANGES, field_flags, qc_flag

from .conftest import BIKE, CAMERA, NOW, RAIN, STATUS, WATER, js

P, N, S, F, M = QcFlag.PASS, QcFlag.NOT_EVALUATED, QcFlag.SUSPECT, QcFlag.FAIL, QcFlag.MISSING


@pytest.mark.parametrize(
    ("kind", "fields", "flag"),
    [
        ("water", {"level_cm": 0.0}, P),
        ("water", {"level_cm": 120.0}, P),
        ("water", {"level_cm": -0.5}, P),
        ("water", {"level_cm": -3.0}, S),
        ("water", {"level_cm": 180.0}, S),
        ("water", {"level_cm": 301.0}, F),
        ("water", {"level_cm": -6.0}, F),
        ("water", {"level_cm": 5.0, "battery_v": 3.1}, P),  # low battery: housekeeping
        ("water", {"level_cm": 5.0, "battery_v": 2.0}, P),  # unusual but possible
        ("water", {"level_cm": 5.0, "battery_v": 9.0}, S),  # impossible: electronics suspect
        ("water", {"level_cm": 5.0, "rssi_dbm": 10.0}, S),
        ("water", {"level_cm": 301.0, "battery_v": 9.0}, F),
        ("rain", {"rain_mm": 2.0}, P),
        ("rain", {"rain_mm": 80.0}, S),
        ("rain", {"rain_mm": 900.0}, F),
        ("rain", {"intensity_mm_h": 250.0}, S),
        ("rain", {"rain_mm": 2.0, "intensity_mm_h": 2000.0}, F),
        ("bike", {"bikes": 80, "capacity": 69}, P),  # overflow is what we watch, not a fault
        ("bike", {"bikes": 300, "capacity": 69}, S),  # > 4× capacity
        ("bike", {"bikes": 1500, "capacity": 69}, F),  # > 20× capacity
        ("bike", {"bikes": 10, "capacity": 69, "by_operator": {"a": 4, "b": 6}}, P),
        ("bike", {"bikes": 10, "capacity": 69, "by_operator": {"a": 4}}, S),
        ("camera", {"counts": {"person": 10}}, P),
        ("camera", {"counts": {"person": 900}}, S),
        ("camera", {"counts": {"vehicle": 5000}}, F),
        ("camera", {"counts": {}, "water_cover": 0.4}, P),
        ("camera", {"counts": {"person": 1}, "status": "degraded"}, S),
        ("camera", {"counts": {"person": 1}, "status": "obstructed"}, F),
        ("camera", {"counts": {"person": 1}, "status": "offline"}, M),
        ("status", {"battery_v": 3.7}, P),
        ("status", {"battery_v": 2.5}, S),
        ("status", {"firmware": "1.0"}, N),
        ("status", {}, N),
    ],
)
def test_flag_table(kind: str, fields: dict[str, Any], flag: QcFlag) -> None:
    assert qc_flag(kind, fields) is flag


def test_every_kind_has_ranges_for_real_contract_fields() -> None:
    assert set(GROSS_RANGES) == set(KINDS)
    for kind, table in GROSS_RANGES.items():
        model = READING_TYPES[kind]
        names = set(model.model_fields) | ({"water_cover"} if kind == "camera" else set())
        if kind == "camera":
            names |= set(model.model_fields["counts"].annotation.model_fields)  # type: ignore[union-attr]  # CameraCounts
        for name, rng in table.items():
            assert name in names, (kind, name)
            assert rng.fail_min <= rng.suspect_min <= rng.suspect_max <= rng.fail_max


def test_water_level_ranges_agree_with_streaming_qc() -> None:
    from models.qc import PARAMS_BY_KIND

    ours, theirs = GROSS_RANGES["water"]["level_cm"], PARAMS_BY_KIND["water"]
    assert (ours.fail_min, ours.fail_max, ours.suspect_min, ours.suspect_max) == (
        theirs.fail_min,
        theirs.fail_max,
        theirs.suspect_min,
        theirs.suspect_max,
    )


def test_field_flags_name_each_field() -> None:
    assert field_flags("water", {"level_cm": 400.0, "battery_v": 3.6}) == {
        "level_cm": F,
        "battery_v": P,
    }


def test_wrong_types_are_left_to_the_contract() -> None:
    assert qc_flag("water", {"level_cm": "3"}) is N
    assert qc_flag("camera", {"counts": [1], "status": ["x"]}) is N


@pytest.mark.parametrize(
    ("topic", "body", "flag"),
    [
        (WATER, {"level_cm": 250.0}, S),
        (WATER, {"level_cm": 999.0}, F),
        (RAIN, {"rain_mm": 0.4}, P),
        (BIKE, {"bikes": 10, "capacity": 69}, P),
        (CAMERA, {"counts": {"person": 3}, "status": "offline"}, M),
        (STATUS, {"firmware": "1.2"}, N),
    ],
)
def test_implausible_readings_are_flagged_not_dropped(
    decoder: Decoder, topic: str, body: dict[str, Any], flag: QcFlag
) -> None:
    [r] = decoder.decode(topic, js({"ts": "2026-11-23T07:59:00Z", **body}), NOW)
    assert r.qc is flag
