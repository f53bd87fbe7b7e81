"""Property tests: whatever arrives, the decoder returns readings or raises ContractError."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridwatch.contracts import DeadLetterReason, ReadingBase
from gridwatch.errors import ContractError
from gridwatch.registry import Registry
from ingest import strictjson
from ingest.decode import Decoder

from .conftest import BIKE, CAMERA, NOW, NOW_S, RAIN, STATUS, WATER

REASONS = {r.value for r in DeadLetterReason}
TOPICS = [WATER, RAIN, BIKE, CAMERA, STATUS, "gw/v1/water/nope", "gw/v1/x/y", "junk"]
VALID: list[tuple[str, Any]] = [
    (WATER, {"ts": "2026-11-23T07:59:00Z", "seq": 3, "level_cm": 4.2, "battery_v": 3.6}),
    (RAIN, {"ts": int(NOW_S * 1000) - 5000, "rain_mm": 0.2, "intensity_mm_h": 2.4}),
    (
        BIKE,
        {
            "ts": "2026-11-23T07:59:00Z",
            "bikes": 8,
            "capacity": 69,
            "by_operator": {"meituan": 5, "didi": 3},
        },
    ),
    (CAMERA, {"ts": "2026-11-23T07:59:00Z", "counts": {"person": 3}, "water_cover": 0.2}),
    (
        CAMERA,
        {
            "NotificationMessage": [
                {
                    "Topic": "tns1:RuleEngine/CountAggregation/Counter",
                    "UtcTime": "2026-11-23T07:59:00Z",
                    "Data": {
                        "SimpleItem": [
                            {"Name": "ObjectClass", "Value": "Human"},
                            {"Name": "Count", "Value": 4},
                        ]
                    },
                }
            ]
        },
    ),
    (STATUS, {"ts": "2026-11-23T07:59:00Z", "battery_v": 3.6, "uptime_s": 5, "firmware": "1"}),
    (
        WATER,
        [
            {"bn": "urn:dev:gw:wl-00001:", "bt": NOW_S - 60, "bu": "cm", "n": "level", "v": 2},
            {"n": "seq", "v": 4},
            {"n": "level", "v": 3, "t": 30},
        ],
    ),
]

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["NaN", "1e400", "\ud800", "", "cm", "urn:dev:gw:wl-00001:level"])
)
_json = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def check_decode(decoder: Decoder, topic: str, payload: bytes) -> None:
    reason: str | None = None
    cause: BaseException | None = None
    try:
        out = decoder.decode(topic, payload, NOW)
    except ContractError as exc:
        reason, cause = exc.reason, exc.__cause__
    # A bug caught at the boundary is reported as malformed; here it must fail.
    assert decoder.stats.internal_errors == 0, cause
    if reason is not None:
        assert reason in REASONS
        return
    assert out
    assert all(isinstance(r, ReadingBase) for r in out)
    assert [r.ts for r in out] == sorted(r.ts for r in out)
    for r in out:  # every reading survives the trip through Kafka
        type(r).model_validate_json(r.model_dump_json())


def _decoder(registry: Registry) -> Decoder:
    return Decoder(registry, rate_per_s=1e9, burst=1e9)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(topic=st.sampled_from(TOPICS), payload=st.binary(max_size=300))
def test_arbitrary_bytes(registry: Registry, topic: str, payload: bytes) -> None:
    check_decode(_decoder(registry), topic, payload)


@FUZZ
@given(topic=st.sampled_from(TOPICS[:5]), doc=_json)
def test_arbitrary_json(registry: Registry, topic: str, doc: Any) -> None:
    try:
        payload = json.dumps(doc).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        return
    check_decode(_decoder(registry), topic, payload)


def _mutate(doc: Any, path: list[int], replacement: Any, drop: bool) -> Any:
    """Replace (or drop) one node of ``doc``, chosen by ``path``."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return replacement
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[path[0] % len(keys)]
    if isinstance(doc, dict):
        out = dict(doc)
        if drop and len(path) == 1:
            del out[key]
        else:
            out[key] = _mutate(doc[key], path[1:], replacement, drop)
        return out
    out_list = list(doc)
    out_list[key] = _mutate(doc[key], path[1:], replacement, drop)
    return out_list


@FUZZ
@given(
    case=st.sampled_from(VALID),
    path=st.lists(st.integers(0, 10), min_size=1, max_size=5),
    replacement=_json,
    drop=st.booleans(),
)
def test_mutated_valid_payloads(
    registry: Registry, case: tuple[str, Any], path: list[int], replacement: Any, drop: bool
) -> None:
    topic, doc = case
    try:
        payload = json.dumps(_mutate(doc, path, replacement, drop)).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        return
    check_decode(_decoder(registry), topic, payload)


@FUZZ
@given(case=st.sampled_from(VALID), cut=st.integers(0, 400), byte=st.integers(0, 255))
def test_byte_level_mutations(
    registry: Registry, case: tuple[str, Any], cut: int, byte: int
) -> None:
    topic, doc = case
    raw = json.dumps(doc).encode()
    i = cut % (len(raw) + 1)
    for payload in (
        raw[:i],
        raw[:i] + bytes([byte]) + raw[i + 1 :],
        raw[:i] + bytes([byte]) + raw[i:],
    ):
        check_decode(_decoder(registry), topic, payload)


def test_the_valid_seeds_are_valid(registry: Registry) -> None:
    for topic, doc in VALID:  # a decoder each: two camera seeds share one point in time
        decoder = _decoder(registry)
        assert decoder.decode(topic, json.dumps(doc).encode(), NOW)
        assert decoder.stats.internal_errors == 0


@FUZZ
@given(doc=_json)
def test_strictjson_round_trips_what_it_accepts(doc: Any) -> None:
    try:
        payload = json.dumps(doc).encode("utf-8", "surrogatepass")
    except (ValueError, TypeError):
        return
    try:
        parsed = strictjson.loads(payload)
    except ContractError as exc:
        reason = exc.reason
    else:
        assert json.dumps(parsed) == json.dumps(doc)
        return
    assert reason in REASONS
