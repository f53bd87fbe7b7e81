"""RainHistory: a gauge's rain state as it stood at any event time of the kept span."""

from __future__ import annotations

import numpy as np
import pytest

from models import flood_state as fs

T0 = 1_720_000_000.0


def _rain_states(minutes: int, mm_per_min: list[float]) -> list[dict[str, float]]:
    """The rain fields of one gauge after each of its one-minute readings."""
    state = fs.FloodState()
    out = []
    for m in range(minutes):
        state = fs.update_rain(state, T0 + 60 * m, mm_per_min[m], None)
        out.append({k: v for k, v in state.to_dict().items() if k in fs.RAIN_FIELDS})
    return out


def _same(a: dict[str, float] | None, b: dict[str, float]) -> bool:
    assert a is not None
    return all(a[k] == pytest.approx(b[k], nan_ok=True) for k in fs.RAIN_FIELDS)


def test_state_at_a_time_is_the_one_after_the_last_reading_by_then() -> None:
    rain = [0.0] * 20 + [2.0] * 40
    states = _rain_states(60, rain)
    h = fs.RainHistory()
    for m, st in enumerate(states):
        assert h.record("rg-1", T0 + 60 * m, st)
    assert h.at("rg-1", T0 - 1) is None  # before the first reading: nothing known
    assert h.at("rg-other", T0 + 600) is None
    for m in (0, 19, 20, 35, 59):
        assert _same(h.at("rg-1", T0 + 60 * m), states[m])
        assert _same(h.at("rg-1", T0 + 60 * m + 59), states[m])  # until the next reading
    assert _same(h.at("rg-1", T0 + 86_400), states[-1])  # after the newest: the newest
    # the storm as it stood 10 minutes into the rain, not as it stands now
    early = fs.features(
        fs.FloodState.stack([fs.FloodState(**h.at("rg-1", T0 + 60 * 30))]), [30.0], T0 + 60 * 30
    )[0]
    late = fs.features(fs.FloodState.stack([fs.FloodState(**states[-1])]), [30.0], T0 + 60 * 30)[0]
    k = fs.FEATURES.index("rain_60_mm")
    assert early[k] == pytest.approx(22.0) and late[k] > early[k]


def test_older_or_repeated_times_are_refused() -> None:
    states = _rain_states(3, [1.0, 1.0, 1.0])
    h = fs.RainHistory()
    assert h.record("rg-1", T0 + 120, states[2])
    assert not h.record("rg-1", T0 + 60, states[1])
    assert not h.record("rg-1", T0 + 120, states[1])
    assert not h.record("rg-1", float("nan"), states[1])
    assert h.at("rg-1", T0 + 60) is None
    assert h.newest("rg-1") == T0 + 120 and h.newest("rg-2") is None
    assert len(h) == 1


def test_span_is_bounded_and_keeps_the_state_at_its_start() -> None:
    states = _rain_states(600, [0.5] * 600)
    h = fs.RainHistory(keep_s=3600.0)
    for m, st in enumerate(states):
        h.record("rg-1", T0 + 60 * m, st)
    assert len(h) <= 128  # about an hour of minutes (and room to append), not ten hours
    newest = T0 + 60 * 599
    assert _same(h.at("rg-1", newest - 3600), states[539])
    assert h.at("rg-1", T0 + 60 * 100) is None  # long before the kept span


def test_many_gauges_are_independent() -> None:
    a, b = _rain_states(10, [1.0] * 10), _rain_states(10, [0.0] * 10)
    h = fs.RainHistory()
    for m in range(10):
        h.record("rg-a", T0 + 60 * m, a[m])
        h.record("rg-b", T0 + 60 * m + 30, b[m])
    got_a, got_b = h.at("rg-a", T0 + 300), h.at("rg-b", T0 + 300)
    assert got_a is not None and got_b is not None
    assert got_a["r0"] > 0 and got_b["r0"] == 0.0
    assert _same(got_b, b[4])  # rg-b's reading at +330 s comes after +300 s
    assert np.isfinite(got_a["t_rain"])
