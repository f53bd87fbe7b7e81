"""One contract suite over every streaming scorer and forecaster.

Seeded repeatability, state round-trip (through JSON), output range, constant and
missing input, and batch == loop of singles (with devices repeated inside a batch).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from models import bike_forecast, detectors, qc


@dataclass(frozen=True)
class Scorer:
    name: str
    state_cls: Any
    single: Callable[[Any, float, float], tuple[Any, dict[str, float]]]
    batch: Callable[[dict, np.ndarray, np.ndarray, np.ndarray], tuple[dict, dict[str, np.ndarray]]]
    score_key: str
    lo: float
    hi: float


def _qc_single(state, t, x):
    s, r = qc.step(state, (t, x), qc.QcParams())
    return s, {"flag": r.flag, "bits": r.bits}


def _qc_batch(states, dev, ts, x):
    return qc.step_batch(states, dev, ts, x, qc.QcParams())


DET = detectors.DetectorParams(warmup=10)


def _det_single(state, t, x):
    s, r = detectors.step(state, (t, x), DET)
    return s, {"score": r.score, "alert": r.alert}


def _det_batch(states, dev, ts, x):
    return detectors.step_batch(states, dev, ts, x, DET)


BIKE = bike_forecast.BikeParams()


def _bike_single(state, t, x):
    s, f = bike_forecast.step(state, (t, x, 40.0), BIKE)
    return s, {"p_exceed": f.p_exceed, "q50": f.q50}


def _bike_batch(states, dev, ts, x):
    states, out = bike_forecast.step_batch(states, dev, ts, x, np.full(x.size, 40.0), BIKE)
    return states, {"p_exceed": out["p_exceed"], "q50": out["q50"]}


SCORERS: list[Scorer] = [
    Scorer("bike", bike_forecast.BikeState, _bike_single, _bike_batch, "p_exceed", 0.0, 1.0),
    Scorer("qc", qc.QcState, _qc_single, _qc_batch, "flag", 1, 9),
    Scorer("detector", detectors.DetectorState, _det_single, _det_batch, "score", 0.0, 1.0),
]
IDS = [s.name for s in SCORERS]


def make_series(seed: int, n: int, missing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = 1_690_000_000.0 + 60.0 * np.arange(n) + rng.uniform(0, 5, n)
    x = np.abs(5 + 3 * np.sin(np.arange(n) / 50.0) + rng.normal(0, 0.5, n))
    x[n // 2 : n // 2 + 10] += 40
    if missing:
        x[rng.random(n) < 0.05] = np.nan
    return ts, x


def run_single(sc: Scorer, ts, x, state=None):
    state = state if state is not None else sc.state_cls()
    outs = []
    for t, v in zip(ts, x, strict=True):
        state, o = sc.single(state, float(t), float(v))
        outs.append(o)
    return state, outs


@pytest.mark.parametrize("sc", SCORERS, ids=IDS)
def test_seeded_repeatability(sc):
    ts, x = make_series(7, 200)
    s1, o1 = run_single(sc, ts, x)
    s2, o2 = run_single(sc, *make_series(7, 200))
    np.testing.assert_equal(o1, o2)
    assert s1.equals(s2)


@pytest.mark.parametrize("sc", SCORERS, ids=IDS)
def test_state_round_trip_through_json(sc):
    ts, x = make_series(3, 150)
    mid, _ = run_single(sc, ts[:80], x[:80])
    restored = sc.state_cls.from_dict(json.loads(json.dumps(mid.to_dict())))
    assert restored.equals(mid)
    end_a, out_a = run_single(sc, ts[80:], x[80:], mid)
    end_b, out_b = run_single(sc, ts[80:], x[80:], restored)
    np.testing.assert_equal(out_a, out_b)
    assert end_a.equals(end_b)


@pytest.mark.parametrize("sc", SCORERS, ids=IDS)
def test_bad_state_dict_raises_our_error(sc):
    from models.errors import ModelError

    d = sc.state_cls().to_dict()
    d.pop(next(iter(d)))
    with pytest.raises(ModelError):
        sc.state_cls.from_dict(d)


@pytest.mark.parametrize("sc", SCORERS, ids=IDS)
def test_score_range(sc):
    ts, x = make_series(11, 300)
    _, outs = run_single(sc, ts, x)
    vals = np.array([o[sc.score_key] for o in outs], dtype=float)
    assert np.all(np.isfinite(vals))
    assert vals.min() >= sc.lo
    assert vals.max() <= sc.hi


@pytest.mark.parametrize("sc", SCORERS, ids=IDS)
@pytest.mark.parametrize("level", [0.0, 12.5])
def test_constant_input(sc, level):
    ts = 1_690_000_000.0 + 60.0 * np.arange(300)
    state, outs = run_single(sc, ts, np.full(300, level))
    vals = np.array([o[sc.score_key] for o in outs], dtype=float)
    assert np.all(np.isfinite(vals))
    assert all(np.isfinite(v) or np.isnan(v) for v in state.to_dict().values())
    if sc.score_key in ("score", "p_exceed"):
        assert vals.max() < 0.5


@pytest.mark.parametrize("sc", SCORERS, ids=IDS)
def test_missing_input_keeps_state(sc):
    ts, x = make_series(5, 60, missing=False)
    state, _ = run_single(sc, ts, x)
    after, outs = run_single(sc, ts[-1] + 60.0 * np.arange(1, 6), np.full(5, np.nan), state)
    for o in outs:
        assert np.isfinite(o[sc.score_key])
        assert o[sc.score_key] in (0, 0.0, 9) or sc.score_key == "flag"
    d0, d1 = state.to_dict(), after.to_dict()
    changed = {k for k in d0 if not (d0[k] == d1[k] or (np.isnan(d0[k]) and np.isnan(d1[k])))}
    assert changed <= {"flat_n"}


@pytest.mark.parametrize("sc", SCORERS, ids=IDS)
def test_batch_equals_loop_of_singles(sc):
    rng = np.random.default_rng(2)
    n_dev, n = 6, 400
    dev = np.sort(rng.integers(0, n_dev, n))
    dev = rng.permutation(dev)
    ts = np.empty(n)
    x = np.empty(n)
    for d in range(n_dev):
        pos = np.flatnonzero(dev == d)
        t_d, x_d = make_series(d, pos.size)
        ts[pos], x[pos] = t_d, x_d
    states, out = sc.batch(sc.state_cls.initial_arrays(n_dev), dev, ts, x)
    singles = [sc.state_cls() for _ in range(n_dev)]
    for j in range(n):
        singles[dev[j]], o = sc.single(singles[dev[j]], float(ts[j]), float(x[j]))
        for k, v in o.items():
            assert out[k][j] == pytest.approx(v, rel=1e-12, abs=1e-12, nan_ok=True), (k, j)
    for d, s in enumerate(sc.state_cls.unstack(states)):
        assert s.equals(singles[d])


def test_detector_fires_on_a_jump_and_not_on_noise():
    rng = np.random.default_rng(0)
    n = 2000
    ts = 1_690_000_000.0 + 300.0 * np.arange(n)
    x = 10 + rng.normal(0, 1, n)
    x[1500:] += 12
    scores = detectors.score_series(x[:, None], detectors.DetectorParams(), ts[:, None])[:, 0]
    alerts = np.flatnonzero(scores >= detectors.DetectorParams().threshold)
    assert np.any((alerts >= 1500) & (alerts < 1510))
    assert np.sum(alerts < 1500) <= 8


def _warm_state(n: int = 400, seed: int = 1):
    rng = np.random.default_rng(seed)
    ts = 1_690_000_000.0 + 300.0 * np.arange(n)
    x = 10 + rng.normal(0, 1, n)
    state = detectors.DetectorState()
    for t, v in zip(ts, x, strict=True):
        state, _ = detectors.step(state, (float(t), float(v)), detectors.DetectorParams())
    return state, float(ts[-1])


@pytest.mark.parametrize("clip", [3.0, 0.0])
def test_an_outlier_moves_the_levels_only_as_far_as_the_clip(clip):
    state, t = _warm_state()
    params = detectors.DetectorParams(level_clip=clip)
    after, out = detectors.step(state, (t + 300.0, 1_000.0), params)
    assert out.alert
    unclipped = params.alpha_fast * (1_000.0 - state.m_fast)
    moved = after.m_fast - state.m_fast
    if clip:
        assert 0 < moved <= params.alpha_fast * clip * 1.25 * state.d_fast + 1e-12
        assert after.m_slow - state.m_slow <= params.alpha_slow * clip * 1.25 * state.d_slow
    else:
        assert moved == pytest.approx(unclipped)


def test_an_outlier_moves_its_seasonal_bin_only_as_far_as_the_clip():
    state, t = _warm_state(n=24 * 12 * 5)  # five days of 5-minute readings
    params = detectors.DetectorParams()
    ts = t + 300.0
    b = int((ts % params.season_period_s) / params.season_period_s * detectors.SEASON_BINS)
    before = state.to_dict()
    after, _ = detectors.step(state, (ts, 1_000.0), params)
    a_s = params.alpha_season
    limit = a_s * params.season_clip * 1.25 * before[f"sd{b}"]
    assert 0 < after.to_dict()[f"sm{b}"] - before[f"sm{b}"] <= limit + 1e-12


def test_a_level_shift_is_still_learned():
    rng = np.random.default_rng(4)
    n = 6000
    ts = 1_690_000_000.0 + 300.0 * np.arange(n)
    x = 10 + rng.normal(0, 1, n)
    x[2000:] += 12
    params = detectors.DetectorParams()
    scores = detectors.score_series(x[:, None], params, ts[:, None])[:, 0]
    assert scores[2000:2010].max() >= params.threshold
    # the new level becomes the baseline: no alerts once it has been learned
    assert scores[4500:].max() < params.threshold
