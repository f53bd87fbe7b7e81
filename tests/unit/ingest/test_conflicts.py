"""Nothing lost without trace: conflicting readings and retained replays.

A reading is its InfluxDB point (device + event time in ms, ``ingest.identity``); two
readings of one point with the same values are one reading (a duplicate), with other
values a conflict, dead-lettered and counted rather than overwriting the first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.contracts import DeadLetterReason, WaterReading
from gridwatch.errors import ContractError
from gridwatch.registry import Registry
from ingest.decode import Decoder
from ingest.identity import content, describe_conflict, point_ms, same
from ingest.senml import to_senml
from streams.influx_sink import _ms as influx_point_ms

from .conftest import BIKE, CAMERA, NOW, STATUS, WATER, js

TS = "2026-11-23T07:59:00Z"
TS_MS = int(datetime(2026, 11, 23, 7, 59, tzinfo=UTC).timestamp() * 1000)
BN = "urn:dev:gw:wl-00001:"


def reason(decoder: Decoder, topic: str, payload: bytes) -> str:
    with pytest.raises(ContractError) as info:
        decoder.decode(topic, payload, NOW)
    return str(info.value.reason)


def test_json_and_senml_of_the_same_values_are_one_reading(decoder: Decoder) -> None:
    decoder.decode(WATER, js({"ts": TS, "seq": 4, "level_cm": 3.2, "battery_v": 3.6}), NOW)
    senml = [
        {"bn": BN, "bt": TS_MS / 1000, "n": "level", "u": "m", "v": 0.032},  # 3.2 cm, in m
        {"n": "battery", "u": "mV", "v": 3600},
        {"n": "seq", "v": 900},  # another seq: not part of what the reading says
    ]
    assert reason(decoder, WATER, js(senml)) == "duplicate"
    assert (decoder.stats.guards.duplicates, decoder.stats.guards.conflicts) == (1, 0)


def test_another_level_at_the_same_time_is_a_conflict_naming_the_earlier_value(
    decoder: Decoder,
) -> None:
    decoder.decode(WATER, js({"ts": TS, "level_cm": 3.2}), NOW)  # e.g. a QoS 2 reading
    senml = [{"bn": BN, "bt": TS_MS / 1000, "n": "level", "u": "cm", "v": 41.5}]
    with pytest.raises(ContractError) as info:
        decoder.decode(WATER, js(senml), NOW)
    assert info.value.reason == DeadLetterReason.CONFLICT
    assert "wl-00001" in info.value.detail
    assert "2026-11-23T07:59:00+00:00: level_cm 41.5 (earlier 3.2)" in info.value.detail
    assert decoder.stats.guards.conflicts == 1
    assert decoder.stats.rejected == {"conflict": 1}
    assert decoder.stats.snapshot()["conflicts"] == 1


def test_same_seq_and_time_with_other_values_is_a_conflict_not_a_duplicate(
    decoder: Decoder,
) -> None:
    decoder.decode(WATER, js({"ts": TS, "seq": 1, "level_cm": 3.2}), NOW)
    assert reason(decoder, WATER, js({"ts": TS, "seq": 1, "level_cm": 3.3})) == "conflict"


def test_times_within_one_millisecond_are_one_point(decoder: Decoder) -> None:
    decoder.decode(WATER, js({"ts": "2026-11-23T07:59:00.0002Z", "level_cm": 1.0}), NOW)
    later = js({"ts": "2026-11-23T07:59:00.0009Z", "level_cm": 2.0})  # same InfluxDB ms
    assert reason(decoder, WATER, later) == "conflict"
    assert decoder.decode(WATER, js({"ts": "2026-11-23T07:59:00.001Z", "level_cm": 2.0}), NOW)


def test_an_optional_field_present_once_and_absent_once_is_a_conflict(decoder: Decoder) -> None:
    decoder.decode(WATER, js({"ts": TS, "level_cm": 3.2, "battery_v": 3.6}), NOW)
    with pytest.raises(ContractError) as info:
        decoder.decode(WATER, js({"ts": TS, "level_cm": 3.2}), NOW)
    assert info.value.reason == DeadLetterReason.CONFLICT
    assert "battery_v absent (earlier 3.6)" in info.value.detail


def test_a_pack_forwards_its_fresh_readings_and_reports_its_conflicting_ones(
    decoder: Decoder,
) -> None:
    decoder.decode(WATER, js({"ts": TS, "level_cm": 3.2}), NOW)
    pack: list[dict[str, Any]] = [
        {"bn": BN, "bt": TS_MS / 1000, "n": "level", "u": "cm", "v": 9.9},  # conflict
        {"n": "level", "u": "cm", "v": 4.0, "t": 10},  # new
        {"n": "level", "u": "cm", "v": 3.2, "t": -10},  # new
    ]
    readings, conflict = decoder.decode_message(WATER, js(pack), NOW)
    assert [r.level_cm for r in readings] == [3.2, 4.0]  # type: ignore[attr-defined]
    assert conflict is not None and conflict.reason == DeadLetterReason.CONFLICT
    assert "1 reading(s)" in conflict.detail and "level_cm 9.9 (earlier 3.2)" in conflict.detail
    assert decoder.stats.rejected == {"conflict": 1}
    assert decoder.stats.accepted == 2  # the first message and the pack
    # decode() returns the fresh readings alone; the conflict is still counted
    pack[0]["v"] = 9.8
    pack[1]["t"], pack[2]["t"] = 20, 30
    assert len(decoder.decode(WATER, js(pack), NOW)) == 2
    assert decoder.stats.guards.conflicts == 2


def test_relative_time_readings_keyed_by_seq_never_conflict(decoder: Decoder) -> None:
    decoder.decode(WATER, js([{"n": "level", "u": "cm", "v": 1}, {"n": "seq", "v": 9}]), NOW)
    again = js([{"n": "level", "u": "cm", "v": 2}, {"n": "seq", "v": 9}])
    assert reason(decoder, WATER, again) == "duplicate"  # as before: its time is arrival time
    assert decoder.stats.guards.conflicts == 0


def test_camera_counts_default_to_zero_on_both_sides(decoder: Decoder) -> None:
    decoder.decode(CAMERA, js({"ts": TS, "counts": {"person": 3, "vehicle": 0}}), NOW)
    senml: list[dict[str, Any]] = [
        {"bn": "urn:dev:gw:cam-00001:", "bt": TS_MS / 1000, "n": "count/person", "v": 3}
    ]
    assert reason(decoder, CAMERA, js(senml)) == "duplicate"
    senml[0]["v"] = 4
    with pytest.raises(ContractError, match=r"person 4 \(earlier 3\)"):
        decoder.decode(CAMERA, js(senml), NOW)


def test_text_and_map_fields_are_compared_but_their_earlier_value_is_not_kept(
    decoder: Decoder,
) -> None:
    bike = {"ts": TS, "bikes": 8, "capacity": 20, "by_operator": {"a": 5, "b": 3}}
    decoder.decode(BIKE, js(bike), NOW)
    assert reason(decoder, BIKE, js({**bike, "by_operator": {"b": 3, "a": 5}})) == "duplicate"
    with pytest.raises(ContractError, match="by_operator differs"):
        decoder.decode(BIKE, js({**bike, "by_operator": {"a": 4, "b": 4}}), NOW)
    decoder.decode(STATUS, js({"ts": TS, "firmware": "1.0", "uptime_s": 5}), NOW)
    with pytest.raises(ContractError) as info:
        decoder.decode(STATUS, js({"ts": TS, "firmware": "1.1"}), NOW)
    assert "firmware differs" in info.value.detail
    assert "uptime_s absent (earlier 5)" in info.value.detail


def test_beyond_the_window_a_conflict_is_not_detected(
    make_decoder: Callable[..., Decoder],
) -> None:
    """The documented bound: the device's last ``dedup_window`` readings."""
    decoder = make_decoder(dedup_window=2)
    for s in range(3):
        decoder.decode(WATER, js({"ts": f"2026-11-23T07:59:0{s}Z", "level_cm": 1.0}), NOW)
    assert reason(decoder, WATER, js({"ts": "2026-11-23T07:59:01Z", "level_cm": 5.0})) == (
        "conflict"
    )
    # 07:59:00 fell out of the two-reading window: taken as new (it would overwrite)
    assert decoder.decode(WATER, js({"ts": "2026-11-23T07:59:00Z", "level_cm": 5.0}), NOW)


# -- retained replays -----------------------------------------------------------------


def test_a_retained_replay_is_refused_before_anything_else(decoder: Decoder) -> None:
    good = js({"ts": TS, "level_cm": 3.2})
    with pytest.raises(ContractError) as info:
        decoder.decode_message(WATER, good, NOW, retained=True)
    assert info.value.reason == DeadLetterReason.RETAINED
    assert decoder.stats.rejected == {"retained": 1}
    assert len(decoder.guards) == 0  # no token spent, nothing remembered
    assert decoder.decode(WATER, good, NOW)  # the same bytes live are a reading


# -- properties -----------------------------------------------------------------------

_level = st.floats(min_value=-50, max_value=500, allow_nan=False).map(lambda v: round(v, 2))
_ms_offset = st.integers(min_value=1, max_value=3 * 86400 * 1000)


@settings(max_examples=150, deadline=None)
@given(level=_level, other=_level, offset=_ms_offset, seq=st.integers(0, 2**31))
def test_json_vs_senml_duplicate_iff_same_level(
    registry: Registry, level: float, other: float, offset: int, seq: int
) -> None:
    decoder = Decoder(registry)
    ts_ms = TS_MS - offset
    decoder.decode(WATER, js({"ts": ts_ms, "seq": seq, "level_cm": level}), NOW)
    pack = to_senml("water", "wl-00001", [{"ts_ms": ts_ms, "level_cm": other}])
    with pytest.raises(ContractError) as info:
        decoder.decode(WATER, js(pack), NOW)
    assert info.value.reason == ("duplicate" if other == level else "conflict")


_when = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(ts=_when)
def test_identity_is_the_influx_point_time(ts: datetime) -> None:
    reading = WaterReading(
        device_id="wl-1", ts=ts, received_at=ts, grid_id="g", district_id="d", level_cm=1.0
    )
    assert point_ms(reading) == influx_point_ms(reading)


@given(a=_level, b=_level)
def test_content_equal_iff_values_equal_and_conflicts_name_both(a: float, b: float) -> None:
    def packed(level: float) -> bytes:
        when = NOW - timedelta(minutes=1)
        return content(
            WaterReading(
                device_id="wl-1",
                ts=when,
                received_at=when,
                grid_id="g",
                district_id="d",
                level_cm=level,
            )
        )

    assert (packed(a) == packed(b)) == (a == b)
    if a != b:
        assert describe_conflict("water", packed(a), packed(b)) == (
            f"level_cm {a + 0.0:g} (earlier {b + 0.0:g})"  # -0.0 is 0.0
        )


@given(level=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_unit_conversion_error_is_no_difference_but_a_resolution_step_is(level: float) -> None:
    def packed(value: float) -> bytes:
        when = NOW - timedelta(minutes=1)
        return content(
            WaterReading(
                device_id="wl-1",
                ts=when,
                received_at=when,
                grid_id="g",
                district_id="d",
                level_cm=value,
            )
        )

    assert same("water", packed(level), packed(level * (1 + 1e-13)))
    assert not same("water", packed(level), packed(level + 1e-6 * max(1.0, abs(level))))
