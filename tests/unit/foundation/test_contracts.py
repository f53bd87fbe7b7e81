from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.contracts import (
    Alert,
    Assessment,
    CameraReading,
    Category,
    Complaint,
    DeadLetter,
    ReadingBatch,
    TicketEvent,
    WaterReading,
    incident_key,
    parse_record,
)
from gridwatch.errors import ContractError

NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def water(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "device_id": "wl-00001",
        "ts": "2026-07-01T08:00:00Z",
        "received_at": "2026-07-01T08:00:01Z",
        "grid_id": "D01-S01-G01",
        "district_id": "D01",
        "kind": "water",
        "level_cm": 3.5,
    }
    base.update(overrides)
    return base


def test_water_round_trip() -> None:
    r = parse_record(WaterReading, json.dumps(water()))
    assert r.level_cm == 3.5
    assert r.ts == NOW
    assert parse_record(WaterReading, r.model_dump_json()) == r


@pytest.mark.parametrize(
    "overrides",
    [
        {"level_cm": "3.5"},  # number as string
        {"level_cm": True},  # boolean as number
        {"ts": "2026-07-01T08:00:00"},  # naive time
        {"device_id": "WL_1"},  # bad id
        {"extra": 1},  # unknown field
        {"schema_version": 2},
        {"grid_id": "bad grid id!"},
    ],
)
def test_strictness(overrides: dict[str, object]) -> None:
    with pytest.raises(ContractError) as info:
        parse_record(WaterReading, json.dumps(water(**overrides)))
    assert info.value.reason == "schema"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_rejected(literal: str) -> None:
    raw = json.dumps(water()).replace("3.5", literal)
    with pytest.raises(ContractError):
        parse_record(WaterReading, raw)


def test_times_are_normalised_to_utc() -> None:
    r = parse_record(WaterReading, json.dumps(water(ts="2026-07-01T16:00:00+08:00")))
    assert r.ts == NOW
    assert r.ts.tzinfo == UTC
    local = datetime(2026, 7, 1, 16, 0, tzinfo=timezone(timedelta(hours=8)))
    assert WaterReading.model_validate({**water(), "ts": local, "received_at": local}).ts == NOW


def test_batch_must_be_one_kind() -> None:
    w = parse_record(WaterReading, json.dumps(water()))
    cam = CameraReading.model_validate(
        {
            "device_id": "cam-1",
            "ts": NOW,
            "received_at": NOW,
            "grid_id": "G1",
            "district_id": "D1",
            "counts": {"person": 3},
        }
    )
    with pytest.raises(ValueError, match="another kind"):
        ReadingBatch.model_validate({"kind": "water", "readings": [w, cam], "packed_at": NOW})
    batch = ReadingBatch(kind="water", readings=[w], packed_at=NOW)
    assert parse_record(ReadingBatch, batch.model_dump_json()) == batch


def test_dead_letter_keeps_raw_bytes() -> None:
    raw = bytes(range(256))
    d = DeadLetter.model_validate(
        {"reason": "malformed", "detail": "x", "topic": "t", "raw": raw, "received_at": NOW},
        strict=False,
    )
    assert parse_record(DeadLetter, d.model_dump_json()).raw == raw


def test_dead_letter_raw_is_standard_base64_and_reads_the_url_safe_form() -> None:
    raw = b"\xfb\xff\xfe>?" + bytes(range(256))
    d = DeadLetter.model_validate(
        {"reason": "malformed", "detail": "x", "topic": "t", "raw": raw, "received_at": NOW},
        strict=False,
    )
    doc = json.loads(d.model_dump_json())
    assert doc["raw"] == base64.b64encode(raw).decode()  # "+" and "/", padded
    assert base64.b64decode(doc["raw"], validate=True) == raw
    legacy = {**doc, "raw": base64.urlsafe_b64encode(raw).decode()}  # written before
    assert "-" in legacy["raw"] and "_" in legacy["raw"]
    assert parse_record(DeadLetter, json.dumps(legacy)).raw == raw
    for bad in ("not base64!", "abc"):
        with pytest.raises(ContractError):
            parse_record(DeadLetter, json.dumps({**doc, "raw": bad}))


def test_other_records_round_trip() -> None:
    alert = Alert.model_validate(
        {
            "alert_id": "a1",
            "incident_key": incident_key("G1", Category.WATERLOGGING, "site-1"),
            "kind": "forecast",
            "category": "waterlogging",
            "severity": "major",
            "grid_id": "G1",
            "district_id": "D1",
            "ts": NOW,
            "probability": 0.8,
            "expected_at": NOW + timedelta(minutes=20),
        },
        strict=False,
    )
    assert alert.incident_key == "G1:waterlogging:site-1"
    for record in (
        alert,
        Assessment.model_validate(
            {
                "device_id": "wl-1",
                "kind": "water",
                "ts": NOW,
                "grid_id": "G1",
                "district_id": "D1",
                "risk": 0.5,
            }
        ),
        TicketEvent.model_validate(
            {
                "event_id": "e1",
                "ticket_id": "t1",
                "incident_key": "k",
                "event": "opened",
                "state": "open",
                "category": "crowding",
                "severity": "minor",
                "grid_id": "G1",
                "ts": NOW,
            },
            strict=False,
        ),
        Complaint.model_validate(
            {
                "complaint_id": "c1",
                "ts": NOW,
                "category": "street_vendor",
                "lon": 121.4,
                "lat": 31.2,
            },
            strict=False,
        ),
    ):
        assert parse_record(type(record), record.model_dump_json()) == record


def test_incident_key_rejects_unknown_category() -> None:
    with pytest.raises(ValueError, match="meteor"):
        incident_key("G1", "meteor")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises_anything_but_contract_error_on_bytes(raw: bytes) -> None:
    with contextlib.suppress(ContractError):
        parse_record(WaterReading, raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*water(), "seq", "qc", "origin"]), json_values))
def test_parse_never_raises_anything_but_contract_error_on_mutations(
    mutation: dict[str, object],
) -> None:
    raw = json.dumps({**water(), **mutation})
    try:
        parse_record(WaterReading, raw)
    except ContractError as exc:
        assert exc.reason in ("schema", "malformed")  # noqa: PT017 (hypothesis: no raises() here)
