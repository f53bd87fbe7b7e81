from __future__ import annotations

import numpy as np
import pytest

from streams import hygiene as h


def run(values, probs, usable=None, params: h.HygieneParams | None = None, step_s=60.0):  # type: ignore[no-untyped-def]
    params = params or h.HygieneParams()
    n = len(values)
    usable = np.ones(n, dtype=bool) if usable is None else np.asarray(usable)
    states = h.HygieneState.initial_arrays(1)
    ts = np.arange(n) * step_s
    states, decisions = h.step_batch(
        states,
        np.zeros(n, dtype=np.int64),
        ts,
        np.asarray(values, float),
        np.asarray(probs, float),
        usable,
        params,
    )
    return [h.DECISION_KIND[d] for d in decisions if d != h.NONE], states


def test_storm_gives_forecast_then_observed_then_clear() -> None:
    depth = [0] * 5 + [2, 5, 9, 13, 16, 18, 20, 20, 18, 14, 10, 6, 3] + [1] * 15
    prob = [0.1] * 3 + [0.7] * 14 + [0.1] * 16
    kinds, _ = run(depth, prob)
    assert kinds == ["forecast", "observed", "clear"]


def test_dry_weather_raises_nothing() -> None:
    kinds, _ = run([0.0] * 100, [0.01] * 100)
    assert kinds == []


def test_forecast_that_recedes_is_retracted() -> None:
    kinds, _ = run([1.0] * 30, [0.8] * 5 + [0.1] * 25)
    assert kinds == ["forecast", "recede"]


def test_hysteresis_band_keeps_incident_open() -> None:
    # hovering between 12 and 15 (threshold 15, hysteresis 3) never clears
    kinds, _ = run([16] * 4 + [13.0] * 40, [0.9] * 44)
    assert kinds == ["observed"]


def test_unusable_readings_neither_open_nor_clear() -> None:
    kinds, _ = run([40.0] * 20, [0.99] * 20, usable=[False] * 20)
    assert kinds == []


def test_one_high_reading_is_not_an_incident() -> None:
    kinds, _ = run([0, 0, 25, 0, 0, 0], [0.0] * 6)
    assert kinds == []


def test_escalation_once_above_escalate_level() -> None:
    kinds, _ = run([16, 16, 16, 35, 36, 36], [0.9] * 6)
    assert kinds == ["observed", "observed"]


def test_flapping_needs_longer_to_fire_again() -> None:
    flap = ([20.0] * 3 + [0.0] * 11) * 6
    kinds, _ = run(flap, [0.0] * len(flap), params=h.HygieneParams(clear_duration_s=600))
    opened = kinds.count("observed")
    assert 0 < opened < 6


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_equals_loop_of_singles(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_dev, n = 4, 200
    dev = rng.integers(0, n_dev, n)
    ts = np.sort(rng.uniform(0, 20_000, n))
    val = rng.uniform(0, 30, n)
    p = rng.uniform(0, 1, n)
    ok = rng.uniform(size=n) > 0.1
    prm = h.HygieneParams()
    batch_states, batch_dec = h.step_batch(
        h.HygieneState.initial_arrays(n_dev), dev, ts, val, p, ok, prm
    )
    states = h.HygieneState.initial_arrays(n_dev)
    singles = []
    for j in range(n):
        states, d = h.step_batch(
            states, dev[j : j + 1], ts[j : j + 1], val[j : j + 1], p[j : j + 1], ok[j : j + 1], prm
        )
        singles.append(int(d[0]))
    assert batch_dec.tolist() == singles
    for k in states:
        np.testing.assert_array_equal(batch_states[k], states[k])


def test_state_round_trips() -> None:
    _, states = run([16] * 5, [0.9] * 5)
    state = h.HygieneState.unstack(states)[0]
    assert h.HygieneState.from_dict(state.to_dict()) == state
    assert state.phase == h.OBSERVED
