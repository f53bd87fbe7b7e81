"""The bad-input catalogue: each malformed class breaks the payload the way it says."""

from __future__ import annotations

import json
import math
from datetime import datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.faults import MAIN_FIELD, malformed
from simulators.messages import TEMPLATES, Message, TsCache
from simulators.scenario import MALFORMED_CLASSES

T = 1_784_012_400  # 2026-07-14T07:00:00Z
TS = TsCache()
GOOD = {
    "water": TEMPLATES["water"] % (3.9, 12.5, -97.0, 7, TS(T)),
    "rain": TEMPLATES["rain"] % (12.0, 0.2, 7, TS(T)),
    "bike": TEMPLATES["bike"] % (30, 5, 10, 15, 100, 7, TS(T)),
    "camera": TEMPLATES["camera"] % (1, 0, 20, 0, 9, 0, 7, TS(T), 0.25),
    "status": TEMPLATES["status"] % (4.01, "2.4.1", 7, TS(T), 86400),
}


def _strict_loads(raw: bytes) -> object:
    """A parser as strict as the Ingest issue asks (raises ValueError on every class)."""

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in items]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(items)

    def constant(name: str) -> float:
        raise ValueError(name)

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError("non-finite")
        return value

    if len(raw) > 16 * 1024:
        raise ValueError("too large")
    return json.loads(
        raw.decode("utf-8"), object_pairs_hook=pairs, parse_constant=constant, parse_float=number
    )


def _depth(doc: object) -> int:
    if isinstance(doc, dict):
        return 1 + max((_depth(v) for v in doc.values()), default=0)
    if isinstance(doc, list):
        return 1 + max((_depth(v) for v in doc), default=0)
    return 0


def test_good_templates_are_canonical_json() -> None:
    for body in GOOD.values():
        doc = json.loads(body)
        assert json.dumps(doc, sort_keys=True, separators=(",", ":")) == body


@settings(max_examples=150, deadline=None)
@given(
    cls=st.sampled_from(sorted(MALFORMED_CLASSES)),
    kind=st.sampled_from(sorted(GOOD)),
    seed=st.integers(0, 2**32 - 1),
)
def test_each_class_breaks_the_payload_as_catalogued(cls: str, kind: str, seed: int) -> None:
    dev = f"dev-{kind}"
    topic, raw = malformed(cls, kind, dev, GOOD[kind], T, TS, np.random.default_rng(seed))
    _, _, topic_kind, topic_dev = topic.split("/")
    reason = MALFORMED_CLASSES[cls]
    if reason in ("unknown_device", "topic_mismatch"):
        assert raw == GOOD[kind].encode()
        if reason == "unknown_device":
            assert topic_dev != dev and topic_kind == kind
        else:
            assert topic_dev == dev and topic_kind != kind
        return
    assert (topic_kind, topic_dev) == (kind, dev)
    if cls in ("number_as_string", "bool_as_number"):
        value = _strict_loads(raw)[MAIN_FIELD[kind]]  # type: ignore[index]
        assert isinstance(value, str if cls == "number_as_string" else bool)
        return
    if cls in ("future_ts", "stale_ts"):
        ts = datetime.fromisoformat(_strict_loads(raw)["ts"]).timestamp()  # type: ignore[index]
        assert (ts > T + 3600) if cls == "future_ts" else (ts < T - 7 * 86400)
        return
    if cls == "deep_nesting":
        assert _depth(_strict_loads(raw)) > 100
        return
    if cls == "oversize":
        assert len(raw) > 16 * 1024
    with pytest.raises((ValueError, UnicodeDecodeError)):
        _strict_loads(raw)


@pytest.mark.parametrize("cls", sorted(MALFORMED_CLASSES))
def test_messages_keep_json_payloads_and_encode_the_rest(cls: str) -> None:
    topic, raw = malformed(cls, "water", "wl-00001", GOOD["water"], T, TS, np.random.default_rng(1))
    msg = Message.from_bytes(T, topic, raw)
    assert msg.payload_bytes() == raw
    line = msg.line()
    back = Message.from_line(line)
    assert back.payload_bytes() == raw
    if cls in ("malformed_json", "nan", "infinity", "huge_number", "duplicate_keys", "non_utf8"):
        assert msg.body is None and '"raw_b64"' in line
    else:
        assert msg.body is not None and '"payload"' in line


def test_an_unknown_class_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown malformed class"):
        malformed("bitflip", "water", "x", GOOD["water"], T, TS, np.random.default_rng(0))


def test_malformed_rate_and_classes_follow_the_scenario() -> None:
    from simulators.engine import Simulation
    from simulators.scenario import parse_scenario

    sc = parse_scenario(
        "name: t\nstart: 2026-07-14T07:00:00Z\nduration: 1h\ncity: {size: small}\n"
        "faults: {malformed: 0.05, malformed_classes: [nan, oversize]}\n"
    )
    sim = Simulation(sc, np.random.default_rng(0))
    messages = list(sim.messages())
    bad = [f for f in sim.truth.faults if f["fault"] == "malformed"]
    assert {f["detail"]["class"] for f in bad} == {"nan", "oversize"}
    assert 0.03 < len(bad) / len(messages) < 0.07
    raw = [m for m in messages if m.body is None]
    big = [m for m in messages if m.body is not None and len(m.body) > 16 * 1024]
    assert len(raw) + len(big) == len(bad)
