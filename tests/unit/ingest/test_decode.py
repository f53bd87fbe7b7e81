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
from ingest.decode import Decoder

from .conftest import BIKE, CAMERA, NOW, NOW_S, RAIN, STATUS, WATER, js

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


BIG = b'{"ts": "' + TS.encode() + b'", "level_cm": 1, "pad": "' + b"x" * 16_400 + b'"}'

BAD_INPUTS: list[tuple[str, str, bytes, DeadLetterReason]] = [
    # malformed: not JSON, not UTF-8, duplicate keys, too deep, trailing data
    ("not-json", WATER, b"{level: 1}", DeadLetterReason.MALFORMED),
    ("empty", WATER, b"", DeadLetterReason.MALFORMED),
    ("not-utf8", WATER, b'{"ts": "\xff\xfe", "level_cm": 1}', DeadLetterReason.MALFORMED),
    ("latin1", WATER, '{"ts": "é"}'.encode("latin-1"), DeadLetterReason.MALFORMED),
    ("bom", WATER, b"\xef\xbb\xbf" + js(GOOD_WATER), DeadLetterReason.MALFORMED),
    (
        "dup-key",
        WATER,
        b'{"ts": "%s", "level_cm": 1, "level_cm": 2}' % TS.encode(),
        DeadLetterReason.MALFORMED,
    ),
    ("deep", WATER, b'{"ts": 1, "x": ' + b"[" * 40 + b"]" * 40 + b"}", DeadLetterReason.MALFORMED),
    ("trailing", WATER, js(GOOD_WATER) + b" {}", DeadLetterReason.MALFORMED),
    (
        "lone-surrogate",
        STATUS,
        b'{"ts": "%s", "firmware": "\\ud800"}' % TS.encode(),
        DeadLetterReason.MALFORMED,
    ),
    # non-finite numbers
    ("nan", WATER, b'{"ts": "%s", "level_cm": NaN}' % TS.encode(), DeadLetterReason.NON_FINITE),
    (
        "infinity",
        WATER,
        b'{"ts": "%s", "level_cm": Infinity}' % TS.encode(),
        DeadLetterReason.NON_FINITE,
    ),
    (
        "-infinity",
        WATER,
        b'{"ts": "%s", "level_cm": -Infinity}' % TS.encode(),
        DeadLetterReason.NON_FINITE,
    ),
    ("1e400", WATER, b'{"ts": "%s", "level_cm": 1e400}' % TS.encode(), DeadLetterReason.NON_FINITE),
    (
        "senml-1e400",
        WATER,
        b'[{"n": "level", "u": "cm", "v": -1e400}]',
        DeadLetterReason.NON_FINITE,
    ),
    # schema: wrong types are rejected, never coerced
    ("number-as-string", WATER, js({"ts": TS, "level_cm": "3.5"}), DeadLetterReason.SCHEMA),
    ("bool-as-number", WATER, js({"ts": TS, "level_cm": True}), DeadLetterReason.SCHEMA),
    ("bool-as-int", BIKE, js({"ts": TS, "bikes": True, "capacity": 10}), DeadLetterReason.SCHEMA),
    ("float-as-int", BIKE, js({"ts": TS, "bikes": 3.0, "capacity": 10}), DeadLetterReason.SCHEMA),
    ("seq-as-string", WATER, js({"ts": TS, "level_cm": 1, "seq": "7"}), DeadLetterReason.SCHEMA),
    (
        "huge-int",
        WATER,
        b'{"ts": "%s", "level_cm": 1, "seq": 99999999999999999999}' % TS.encode(),
        DeadLetterReason.SCHEMA,
    ),
    ("negative-seq", WATER, js({"ts": TS, "level_cm": 1, "seq": -1}), DeadLetterReason.SCHEMA),
    ("missing-field", WATER, js({"ts": TS, "battery_v": 3.6}), DeadLetterReason.SCHEMA),
    ("unknown-field", WATER, js({"ts": TS, "level_cm": 1, "foo": 1}), DeadLetterReason.SCHEMA),
    ("sets-qc", WATER, js({"ts": TS, "level_cm": 1, "qc": 1}), DeadLetterReason.SCHEMA),
    ("sets-grid", WATER, js({"ts": TS, "level_cm": 1, "grid_id": "X"}), DeadLetterReason.SCHEMA),
    ("array-of-numbers", WATER, b"[1, 2]", DeadLetterReason.SCHEMA),
    ("scalar", WATER, b"42", DeadLetterReason.SCHEMA),
    ("ts-missing", WATER, js({"level_cm": 1}), DeadLetterReason.SCHEMA),
    ("ts-not-rfc3339", WATER, js({"ts": "2026-11-23", "level_cm": 1}), DeadLetterReason.SCHEMA),
    (
        "ts-no-offset",
        WATER,
        js({"ts": "2026-11-23T07:59:00", "level_cm": 1}),
        DeadLetterReason.SCHEMA,
    ),
    (
        "ts-month-13",
        WATER,
        js({"ts": "2026-13-23T07:59:00Z", "level_cm": 1}),
        DeadLetterReason.SCHEMA,
    ),
    ("ts-bool", WATER, js({"ts": True, "level_cm": 1}), DeadLetterReason.SCHEMA),
    ("rain-negative", RAIN, js({"ts": TS, "rain_mm": -1}), DeadLetterReason.SCHEMA),
    ("rain-empty", RAIN, js({"ts": TS}), DeadLetterReason.SCHEMA),
    (
        "cover-over-1",
        CAMERA,
        js({"ts": TS, "counts": {}, "water_cover": 1.5}),
        DeadLetterReason.SCHEMA,
    ),
    ("counts-list", CAMERA, js({"ts": TS, "counts": [1]}), DeadLetterReason.SCHEMA),
    (
        "status-list",
        CAMERA,
        js({"ts": TS, "counts": {}, "status": ["ok"]}),
        DeadLetterReason.SCHEMA,
    ),
    ("senml-no-unit", WATER, js([{"n": "level", "v": 3}]), DeadLetterReason.SCHEMA),
    # unknown device, topic mismatch, size, times
    ("unknown-device", "gw/v1/water/wl-99999", js(GOOD_WATER), DeadLetterReason.UNKNOWN_DEVICE),
    (
        "kind-mismatch",
        "gw/v1/rain/wl-00001",
        js({"ts": TS, "rain_mm": 1}),
        DeadLetterReason.TOPIC_MISMATCH,
    ),
    (
        "payload-device",
        WATER,
        js({**GOOD_WATER, "device_id": "wl-00002"}),
        DeadLetterReason.TOPIC_MISMATCH,
    ),
    ("payload-kind", WATER, js({**GOOD_WATER, "kind": "rain"}), DeadLetterReason.TOPIC_MISMATCH),
    ("bad-device-id", "gw/v1/water/WL_1", js(GOOD_WATER), DeadLetterReason.TOPIC_MISMATCH),
    (
        "device-id-newline",
        "gw/v1/water/wl-00001\n",
        js(GOOD_WATER),
        DeadLetterReason.TOPIC_MISMATCH,
    ),
    ("unknown-kind", "gw/v1/smoke/wl-00001", js(GOOD_WATER), DeadLetterReason.TOPIC_MISMATCH),
    ("extra-level", "gw/v1/water/wl-00001/x", js(GOOD_WATER), DeadLetterReason.TOPIC_MISMATCH),
    ("wrong-root", "gw/v2/water/wl-00001", js(GOOD_WATER), DeadLetterReason.TOPIC_MISMATCH),
    ("wildcard", "gw/v1/water/+", js(GOOD_WATER), DeadLetterReason.TOPIC_MISMATCH),
    (
        "senml-other-device",
        WATER,
        js([{"bn": "urn:dev:gw:wl-00002:", "n": "level", "u": "cm", "v": 1}]),
        DeadLetterReason.TOPIC_MISMATCH,
    ),
    ("too-large", WATER, BIG, DeadLetterReason.TOO_LARGE),
    (
        "future",
        WATER,
        js({"ts": "2026-11-23T08:06:00Z", "level_cm": 1}),
        DeadLetterReason.FUTURE_TS,
    ),
    ("future-ms", WATER, js({"ts": 10**15, "level_cm": 1}), DeadLetterReason.FUTURE_TS),
    ("stale", WATER, js({"ts": "2026-11-15T07:59:00Z", "level_cm": 1}), DeadLetterReason.STALE_TS),
    (
        "stale-epoch-seconds",
        WATER,
        js({"ts": int(NOW_S), "level_cm": 1}),
        DeadLetterReason.STALE_TS,
    ),
    ("stale-negative", WATER, js({"ts": -(10**15), "level_cm": 1}), DeadLetterReason.STALE_TS),
]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [pytest.param(t, p, r, id=i) for i, t, p, r in BAD_INPUTS],
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
    covered = {r for *_, r in BAD_INPUTS} | {
        DeadLetterReason.RATE_LIMITED,  # test_guards.py
        DeadLetterReason.DUPLICATE,  # test_guards.py
    }
    assert covered == set(DeadLetterReason) - {DeadLetterReason.PROCESSING}


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
    decoder.decode(WATER, js({"ts": TS, "seq": 8, "level_cm": 250.0}), NOW)
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
        body = js({**GOOD_WATER, "seq": 100 + i})
        assert decoder.decode(WATER, wrap(body), NOW)[0].seq == 100 + i
