"""ONVIF-style analytics events and frames → CameraReading."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gridwatch.contracts import CameraReading, DeadLetterReason, QcFlag
from gridwatch.errors import ContractError
from ingest.decode import Decoder

from .conftest import CAMERA, NOW, WATER, js

T0 = "2026-11-23T07:59:00Z"
T1 = "2026-11-23T07:59:30Z"
COUNTER = "tns1:RuleEngine/CountAggregation/Counter"
FIELD = "tns1:RuleEngine/FieldDetector/ObjectsInside"
LINE = "tns1:RuleEngine/LineDetector/Crossed"


def ev(topic: str, data: dict[str, Any], t: str = T0, **extra: Any) -> dict[str, Any]:
    return {"Topic": topic, "UtcTime": t, "Source": {"VideoSource": "vs0"}, "Data": data, **extra}


def one(decoder: Decoder, payload: dict[str, Any]) -> CameraReading:
    [r] = decoder.decode(CAMERA, js(payload), NOW)
    assert isinstance(r, CameraReading)
    return r


@pytest.mark.parametrize(
    ("onvif_class", "ours"),
    [
        ("Human", "person"),
        ("Person", "person"),
        ("Vehicle", "vehicle"),
        ("Vehical", "vehicle"),
        ("Car", "vehicle"),
        ("Truck", "vehicle"),
        ("Bicycle", "bike"),
        ("Bike", "bike"),
        ("StreetVendor", "vendor"),
        ("Garbage", "garbage"),
        ("RoadOccupation", "road_occupation"),
    ],
)
def test_counter_class_mapping(decoder: Decoder, onvif_class: str, ours: str) -> None:
    r = one(decoder, ev(COUNTER, {"ObjectClass": onvif_class, "Count": 7}))
    counts = r.counts.model_dump(exclude={"schema_version"})
    assert counts == {k: (7 if k == ours else 0) for k in counts}
    assert r.ts == NOW - timedelta(minutes=1)
    assert r.qc == QcFlag.PASS


def test_simple_item_lists_and_class_in_source(decoder: Decoder) -> None:
    payload = {
        "Topic": FIELD,
        "UtcTime": T0,
        "Source": {
            "SimpleItem": [
                {"Name": "Rule", "Value": "square"},
                {"Name": "ClassFilter", "Value": "Human"},
            ]
        },
        "Data": {"SimpleItem": [{"Name": "Count", "Value": 31}]},
    }
    assert one(decoder, payload).counts.person == 31


def test_batch_merges_same_time_and_splits_times(decoder: Decoder) -> None:
    payload = {
        "NotificationMessage": [
            ev(COUNTER, {"ObjectClass": "Human", "Count": 10}),
            ev(FIELD, {"ObjectClass": "Human", "Count": 12}),  # overlapping field: max
            ev(LINE, {"ObjectClass": "Bicycle", "Count": 2}),
            ev(LINE, {"ObjectClass": "Bicycle"}),  # one crossing
            ev(LINE, {"ObjectClass": "Face"}),  # part of a person: ignored
            ev("tns1:VideoSource/ImageTooBlurry/AnalyticsService", {"State": True}),
            ev(COUNTER, {"ObjectClass": "Car", "Count": 3}, t=T1),
        ]
    }
    first, second = decoder.decode(CAMERA, js(payload), NOW)
    assert (first.counts.person, first.counts.bike, first.status) == (12, 3, "degraded")
    assert first.qc == QcFlag.SUSPECT
    assert (second.counts.vehicle, second.counts.person, second.status) == (3, 0, "ok")
    assert second.ts - first.ts == timedelta(seconds=30)


def test_frame_counts_objects_by_most_likely_class(decoder: Decoder) -> None:
    def obj(i: int, *cands: tuple[str, float]) -> dict[str, Any]:
        types = [{"Value": c, "Likelihood": p} for c, p in cands]
        return {"ObjectId": i, "Appearance": {"Class": {"Type": types}}}

    frame = {
        "Frame": {
            "UtcTime": T0,
            "Object": [
                obj(1, ("Human", 0.9)),
                obj(2, ("Vehicle", 0.3), ("Human", 0.6)),
                obj(3, ("Bicycle", 0.8), ("Human", 0.2)),
                obj(4, ("Animal", 0.9)),
                {"ObjectId": 5},  # unclassified
            ],
        }
    }
    r = one(decoder, frame)
    assert (r.counts.person, r.counts.bike, r.counts.vehicle) == (2, 1, 0)


@pytest.mark.parametrize(
    ("status_topic", "status", "qc"),
    [
        ("tns1:VideoSource/GlobalSceneChange/ImagingService", "obstructed", QcFlag.MISSING),
        ("tns1:VideoSource/SignalLoss", "offline", QcFlag.MISSING),
    ],
)
def test_state_only_events_are_flagged_missing(
    decoder: Decoder, status_topic: str, status: str, qc: QcFlag
) -> None:
    r = one(decoder, ev(status_topic, {"State": True}))
    assert (r.status, r.qc) == (status, qc)


def test_tamper_alongside_counts_fails_the_counts(decoder: Decoder) -> None:
    payload = {
        "NotificationMessage": [
            ev(COUNTER, {"ObjectClass": "Human", "Count": 4}),
            ev("tns1:VideoSource/GlobalSceneChange/ImagingService", {"State": True}),
        ]
    }
    r = one(decoder, payload)
    assert (r.counts.person, r.status, r.qc) == (4, "obstructed", QcFlag.FAIL)


@pytest.mark.parametrize(
    "payload",
    [
        ev(COUNTER, {"ObjectClass": "Human", "Count": "7"}),  # number as string
        ev(COUNTER, {"ObjectClass": "Human", "Count": True}),  # boolean as number
        ev(COUNTER, {"ObjectClass": "Human", "Count": 7.0}),  # float count
        ev(COUNTER, {"ObjectClass": "Human", "Count": -1}),
        ev(COUNTER, {"ObjectClass": "Dragon", "Count": 1}),  # unknown class
        ev(COUNTER, {"Count": 1}),  # no class
        ev(COUNTER, {"ObjectClass": "Human"}),  # counter without a count
        ev("tns1:RuleEngine/MotionRegionDetector/Motion", {"State": True}),
        ev("tns1:VideoSource/SignalLoss", {"State": "true"}),
        ev(COUNTER, {"ObjectClass": "Human", "Count": 1}, t="yesterday"),
        {"Topic": COUNTER, "Data": {"ObjectClass": "Human", "Count": 1}},  # no UtcTime
        ev(COUNTER, {"ObjectClass": "Human", "Count": 1}, Extra=1),
        {"NotificationMessage": []},
        {"NotificationMessage": [1]},
        {
            "Frame": {
                "UtcTime": T0,
                "Object": [
                    {"Appearance": {"Class": {"Type": [{"Value": "Human", "Likelihood": "0.9"}]}}}
                ],
            }
        },
        {"Frame": {"UtcTime": T0, "Object": {}}},
        {"Topic": COUNTER, "UtcTime": T0, "Data": {"SimpleItem": [{"Name": "Count"}]}},
    ],
)
def test_bad_onvif_payloads_are_schema_errors(decoder: Decoder, payload: dict) -> None:
    with pytest.raises(ContractError) as info:
        decoder.decode(CAMERA, js(payload), NOW)
    assert info.value.reason == DeadLetterReason.SCHEMA, info.value.detail


def test_onvif_only_on_camera_topics(decoder: Decoder) -> None:
    with pytest.raises(ContractError, match="schema"):
        decoder.decode(WATER, js(ev(COUNTER, {"ObjectClass": "Human", "Count": 1})), NOW)


def test_onvif_times_are_checked(decoder: Decoder) -> None:
    late = ev(COUNTER, {"ObjectClass": "Human", "Count": 1}, t="2026-11-23T09:00:00Z")
    with pytest.raises(ContractError, match="future_ts"):
        decoder.decode(CAMERA, js(late), NOW)
