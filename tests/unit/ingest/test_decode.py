"""The decoder: good payloads of every kind, and the bad-input catalogue by reason code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from gridwatch.contracts import (
    BikeReading,
    CameraReading,
    DeadLetterReason,
    QcFlag,
    RainReading,
    StatusReading,
    WaterReading,
    parse_record,
)
from gridwatch.errors import ContractError
from gridwatch.registry import Registry
from ingest.badinput import bad_inputs
from ingest.decode import Decoder

from .conftest import BIKE, CAMERA, NOW, NOW_S, RAIN, STATUS, STATUS_DEVICE, WATER, js

TS = "2026-11-23T07:59:00Z"
TS_MS = int(NOW_S * 1000) - 60_000
GOOD_WATER = {"ts": TS, "seq": 7, "level_cm": 3.5, "battery_v": 3.6, "rssi_dbm": -88.0}


def test_water_object_becomes_a_placed_reading(decoder: Decoder, registry: Registry) -> None:
    [r] = decoder.decode(WATER, js(GOOD_WATER), NOW)
    place = registry.placement("wl-00001")
    assert isinstance(r, WaterReading)
    assert (r.device_id, r.level_cm, r.seq, r.qc) == ("wl-00001", 3.5, 7, QcFlag.PASS)
    assert (r.grid_id, r.district_id) == (place.grid_id, place.district_id)
    assert r.district_id == "D01"
    assert r.ts == NOW - timedelta(minutes=1)
    assert r.received_at == NOW
    assert r.origin.topic == WATER
    # What ingest writes to Kafka, streams read back unchanged.
    assert parse_record(WaterReading, r.model_dump_json()) == r


@pytest.mark.parametrize(
    ("topic", "body", "cls"),
    [
        (WATER, {"ts": TS_MS, "level_cm": 0}, WaterReading),
        (RAIN, {"ts": TS, "rain_mm": 1.2}, RainReading),
        (RAIN, {"ts": TS, "intensity_mm_h": 30}, RainReading),
        (
            BIKE,
            {"ts": TS, "bikes": 50, "capacity": 69, "by_operator": {"meituan": 50}},
            BikeReading,
        ),
        (CAMERA, {"ts": TS, "counts": {"person": 4}, "water_cover": 0.1}, CameraReading),
        (
            STATUS,
            {"ts": TS, "battery_v": 3.7, "uptime_s": 86400, "firmware": "1.4.2"},
            StatusReading,
        ),
        (WATER, {"ts": "2026-11-23t15:59:00.5+08:00", "level_cm": 1}, WaterReading),
        (WATER, {"ts": TS, "level_cm": 1, "device_id": "wl-00001", "kind": "water"}, WaterReading),
    ],
)
def test_every_kind_decodes(decoder: Decoder, topic: str, body: dict, cls: type) -> None:
    [r] = decoder.decode(topic, js(body), NOW)
    assert isinstance(r, cls)
    assert r.ts.utcoffset() == timedelta(0)


@pytest.mark.parametrize("kind", ["water", "rain", "bike", "camera"])
def test_status_topic_is_for_status_devices_only(decoder: Decoder, kind: str) -> None:
    # As every other kind: the simulators' topic_mismatch faults rely on it.
    body = {"ts": TS, "battery_v": 3.7}
    with pytest.raises(ContractError, match="topic_mismatch"):
        decoder.decode(f"gw/v1/status/{_DEVICES[kind]}", js(body), NOW)
    with pytest.raises(ContractError, match="topic_mismatch"):
        decoder.decode(f"gw/v1/{kind}/status-t1", js(body), NOW)


_DEVICES = {"water": "wl-00001", "rain": "rg-00001", "bike": "bk-00001", "camera": "cam-00001"}


# The catalogue lives in ingest.badinput (the attack sweep sends the same cases over MQTT).
BAD_INPUTS = bad_inputs(
    NOW_S,
    {"water": "wl-00001", "rain": "rg-00001", "bike": "bk-00001", "camera": "cam-00001"}
    | {"status": STATUS_DEVICE},
    other_water="wl-00002",
    unknown_water="wl-99999",
)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [pytest.param(b.topic, b.payload, b.reason, id=b.name) for b in BAD_INPUTS],
)
def test_bad_input_is_rejected_with_its_reason(
    decoder: Decoder, topic: str, payload: bytes, reason: DeadLetterReason
) -> None:
    with pytest.raises(ContractError) as info:
        decoder.decode(topic, payload, NOW)
    assert info.value.reason == reason, info.value.detail
    assert decoder.stats.rejected == {reason.value: 1}
    # The decoder stays usable after any rejection.
    assert decoder.decode(WATER, js(GOOD_WATER), NOW)[0].level_cm == 3.5


def test_every_ingest_reason_is_in_the_catalogue() -> None:
    covered = {b.reason for b in BAD_INPUTS} | {
        DeadLetterReason.RATE_LIMITED,  # test_guards.py
        DeadLetterReason.DUPLICATE,  # test_guards.py
        DeadLetterReason.CONFLICT,  # test_conflicts.py
        DeadLetterReason.RETAINED,  # test_conflicts.py
    }
    assert covered == set(DeadLetterReason) - {
        DeadLetterReason.PROCESSING,
        DeadLetterReason.SINK_REJECTED,
    }


def test_naive_arrival_time_is_refused(decoder: Decoder) -> None:
    with pytest.raises(ContractError) as info:
        decoder.decode(WATER, js(GOOD_WATER), NOW.replace(tzinfo=None))
    assert info.value.reason == DeadLetterReason.SCHEMA


def test_limits_are_configurable(make_decoder: Callable[..., Decoder]) -> None:
    decoder = make_decoder(max_future=timedelta(0), max_age=timedelta(minutes=1), max_depth=2)
    with pytest.raises(ContractError, match="future_ts"):
        decoder.decode(WATER, js({"ts": "2026-11-23T08:00:01Z", "level_cm": 1}), NOW)
    with pytest.raises(ContractError, match="stale_ts"):
        decoder.decode(WATER, js({"ts": "2026-11-23T07:58:59Z", "level_cm": 1}), NOW)
    deep = js([{"n": "level", "u": "cm", "v": 1, "x": [[1]]}])
    with pytest.raises(ContractError, match="malformed"):
        decoder.decode(WATER, deep, NOW)


def test_parse_topic(decoder: Decoder) -> None:
    assert decoder.parse_topic("gw/v1/camera/cam-00001") == ("camera", "cam-00001")
    custom = Decoder(decoder.registry, topic_root="city/gw/v1/")
    assert custom.parse_topic("city/gw/v1/water/wl-1") == ("water", "wl-1")
    with pytest.raises(ContractError):
        custom.parse_topic(WATER)


def test_stats_count_messages_readings_and_flags(decoder: Decoder) -> None:
    decoder.decode(WATER, js(GOOD_WATER), NOW)
    decoder.decode(WATER, js({"ts": "2026-11-23T07:59:30Z", "seq": 8, "level_cm": 250.0}), NOW)
    with pytest.raises(ContractError):
        decoder.decode(WATER, b"nope", NOW)
    s = decoder.stats
    assert (s.messages, s.accepted, s.readings) == (3, 2, 2)
    assert s.rejected == {"malformed": 1}
    assert s.qc == {int(QcFlag.PASS): 1, int(QcFlag.SUSPECT): 1}
    assert s.internal_errors == 0
    snap = s.snapshot()
    assert snap["messages"] == 3
    assert snap["rejected_malformed"] == 1
    assert snap[f"qc_{int(QcFlag.SUSPECT)}"] == 1
    assert snap["duplicates"] == 0


def test_internal_errors_become_malformed_and_are_counted(
    decoder: Decoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr("ingest.decode.qc_flag", broken)
    with pytest.raises(ContractError) as info:
        decoder.decode(WATER, js(GOOD_WATER), NOW)
    assert info.value.reason == DeadLetterReason.MALFORMED
    assert "internal KeyError" in info.value.detail
    assert decoder.stats.internal_errors == 1


def test_payload_may_be_any_bytes_like(decoder: Decoder) -> None:
    for i, wrap in enumerate((bytes, bytearray, memoryview)):
        body = js({**GOOD_WATER, "seq": 100 + i, "ts": f"2026-11-23T07:58:0{i}Z"})
        assert decoder.decode(WATER, wrap(body), NOW)[0].seq == 100 + i
