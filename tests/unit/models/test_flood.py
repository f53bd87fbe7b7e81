from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import flood_forecast as ff
from models import flood_state as fs
from models import storms, train
from models.errors import StateError

T0 = 1_720_000_000.0


def _feed(state, minutes, rain_mm, depth):
    for m in range(minutes):
        state = fs.update_rain(state, T0 + 60 * m, rain_mm[m], None)
        state = fs.update_depth(state, T0 + 60 * m, depth[m])
    return state


def test_rain_accumulations_and_storm_clock():
    s = _feed(fs.FloodState(), 90, [0.0] * 30 + [1.0] * 60, [0.0] * 90)
    X = fs.features(fs.FloodState.stack([s]), [30.0], T0 + 60 * 89 + 30)[0]
    f = dict(zip(fs.FEATURES, X, strict=True))
    assert f["rain_60_mm"] == pytest.approx(60.0, abs=5.0)
    assert f["rain_15_mm"] == pytest.approx(15.0, abs=5.0)
    assert f["intensity_mm_h"] == pytest.approx(60.0)
    assert f["min_since_rain_start"] == pytest.approx(59.5, abs=1.0)
    # two hours later, with no rain reports, the rain features have aged out
    X2 = fs.features(fs.FloodState.stack([s]), [30.0], T0 + 60 * 89 + 7200)[0]
    f2 = dict(zip(fs.FEATURES, X2, strict=True))
    assert f2["rain_60_mm"] == 0.0
    assert f2["intensity_mm_h"] == 0.0
    assert f2["min_since_rain"] == pytest.approx(120.0, abs=1.0)


def test_slope_follows_a_rising_pond():
    s = _feed(fs.FloodState(), 60, [0.0] * 60, [0.5 * m for m in range(60)])
    assert s.slope == pytest.approx(0.5, rel=0.05)
    assert s.depth_cm == pytest.approx(29.5)


def test_missing_and_out_of_order_readings_are_ignored():
    s = _feed(fs.FloodState(), 10, [0.0] * 10, [3.0] * 10)
    s2 = fs.update_depth(s, T0 + 600, float("nan"))
    s3 = fs.update_depth(s2, T0, 50.0)  # older than the last reading
    s4 = fs.update_rain(s3, T0 + 660, None, None)
    assert s4.equals(s)


def test_state_round_trip_and_bad_dict():
    s = _feed(fs.FloodState(), 20, [0.4] * 20, [1.0 * m for m in range(20)])
    assert fs.FloodState.from_dict(json.loads(json.dumps(s.to_dict()))).equals(s)
    with pytest.raises(StateError):
        fs.FloodState.from_dict({"depth_cm": 1.0})


def test_batch_updates_equal_loop_of_singles():
    rng = np.random.default_rng(4)
    n_sites, n = 5, 300
    site = rng.integers(0, n_sites, n)
    ts = T0 + np.sort(rng.uniform(0, 20_000, n))
    depth = np.abs(rng.normal(5, 5, n))
    depth[rng.random(n) < 0.1] = np.nan
    rain = np.round(np.abs(rng.normal(0, 1, n)), 1)
    states = fs.FloodState.initial_arrays(n_sites)
    states, _ = fs.update_rain_batch(states, site, ts, rain, np.full(n, np.nan))
    states, _ = fs.update_depth_batch(states, site, ts + 1, depth)
    singles = [fs.FloodState() for _ in range(n_sites)]
    for j in range(n):
        singles[site[j]] = fs.update_rain(singles[site[j]], ts[j], rain[j], None)
    for j in range(n):
        singles[site[j]] = fs.update_depth(singles[site[j]], ts[j] + 1, depth[j])
    for d, s in enumerate(fs.FloodState.unstack(states)):
        assert s.equals(singles[d])
    sites = ff.Sites.default(n_sites)
    batch = ff.batch_forecast(states, sites, T0 + 21_000)
    for d in range(n_sites):
        one = ff.batch_forecast(fs.FloodState.stack([singles[d]]), sites.take([d]), T0 + 21_000)
        np.testing.assert_allclose(one.q50[0], batch.q50[d])
        np.testing.assert_allclose(one.p_exceed[15.0][0], batch.p_exceed[15.0][d])


@settings(max_examples=30, deadline=None)
@given(
    depth=st.floats(0, 120),
    slope=st.floats(-3, 3),
    rain=st.lists(st.floats(0, 12), min_size=12, max_size=12),
    drainage=st.floats(5, 60),
)
def test_reservoir_forecast_is_well_formed(depth, slope, rain, drainage):
    s = fs.FloodState(depth_cm=depth, t_depth=T0, slope=slope, level_ewm=depth)
    s = fs.FloodState.from_dict(
        {**s.to_dict(), **{f"r{i}": r for i, r in enumerate(rain)}, "t_bin": T0}
    )
    fc = ff.batch_forecast(
        fs.FloodState.stack([s]),
        ff.Sites(np.array([drainage]), np.array([5000.0]), np.array([600.0])),
        T0,
    )
    assert np.all(np.isfinite(fc.q50))
    assert np.all(fc.q10 <= fc.q50) and np.all(fc.q50 <= fc.q90)
    assert np.all(fc.q10 >= 0)
    for p in fc.p_exceed.values():
        assert np.all((p >= 0) & (p <= 1))
    # a deeper threshold is never more likely than a shallower one
    assert np.all(fc.p_exceed[15.0] <= fc.p_exceed[7.6] + 1e-12)
    row = fc.row(0)
    assert [r["horizon_min"] for r in row] == [15, 30, 60]


def test_no_rain_dry_site_stays_dry():
    fc = ff.batch_forecast(fs.FloodState.initial_arrays(3), ff.Sites.default(3), T0)
    assert np.all(fc.q50 == 0.0)
    assert np.all(fc.p_exceed[15.0] < 0.01)


@pytest.fixture(scope="module")
def small_storms():
    tr = [storms.simulate(s, n_sites=15, minutes=1440) for s in (1, 2)]
    te = [storms.simulate(s, n_sites=15, minutes=1440) for s in (101, 102)]
    dtr = [storms.dataset(r) for r in tr]
    dte = [storms.dataset(r) for r in te]
    return train.pool(dtr, [r.sites for r in tr]), train.pool(dte, [r.sites for r in te])


def _wet_mae(pred, X, Y):
    wet = (X[:, 0] > 0.5) | (Y.max(axis=1) > 0.5)
    return np.abs(pred - Y)[wet].mean(axis=0)


def test_forecasters_beat_persistence_and_linear_on_storms(small_storms):
    (X, S, Y), (Xt, St, Yt) = small_storms
    assert (Yt > 7.6).any()
    model = train.fit_flood(X, S, Y, max_iter=40)
    persist = _wet_mae(ff.persistence(Xt), Xt, Yt)
    linear = _wet_mae(ff.linear_extrapolation(Xt), Xt, Yt)
    for fc in (ff.ReservoirForecaster().predict(Xt, St), model.predict(Xt, St)):
        mae = _wet_mae(fc.q50, Xt, Yt)
        assert np.all(mae < persist), (mae, persist)
        assert np.all(mae < linear), (mae, linear)


def test_storm_generator_is_seeded():
    a = storms.simulate(5, n_sites=3, minutes=300)
    b = storms.simulate(5, n_sites=3, minutes=300)
    np.testing.assert_array_equal(a.depth_obs, b.depth_obs)
    assert not np.array_equal(a.rain_mm, storms.simulate(6, n_sites=3, minutes=300).rain_mm)


def _storm_result(mae, mae_p, tp_fp_fn, tp_fp_fn_p):
    def skill(counts):
        return dict(zip(("tp", "fp", "fn"), counts, strict=True))

    hr = {"mae_cm": {"persistence": mae_p, "reservoir": mae}}
    for thr in ff.THRESHOLDS_CM:
        hr[f"exceed_{thr:g}cm_reservoir"] = skill(tp_fp_fn)
        hr[f"exceed_{thr:g}cm_persistence"] = skill(tp_fp_fn_p)
    return {"run": {"+15min": hr}}


@pytest.mark.parametrize(
    ("mae", "mae_p", "ours", "pers", "mae_beats", "csi_beats"),
    [
        (1.0, 2.0, (5, 1, 1), (3, 1, 3), True, True),
        (1.0, 2.0, (0, 0, 0), (0, 0, 0), True, True),  # nothing exceeded, nobody warned
        (2.5, 2.0, (5, 1, 1), (3, 1, 3), False, True),  # worse depth
        (1.0, 2.0, (2, 4, 4), (3, 1, 3), True, False),  # worse warnings
        (1.0, 2.0, (0, 5, 0), (0, 0, 0), True, False),  # false alarms where persistence was silent
    ],
)
def test_versus_persistence_verdict(mae, mae_p, ours, pers, mae_beats, csi_beats):
    from models.evaluate_flood import versus_persistence

    rows = versus_persistence({"storms": _storm_result(mae, mae_p, ours, pers)})
    assert {r["forecaster"] for r in rows} == {"reservoir"}
    assert {r["horizon_min"] for r in rows} == {15}
    by = {r["measure"]: r["beats_persistence"] for r in rows}
    assert by["depth MAE (cm)"] is mae_beats
    assert by["CSI exceed 15 cm"] is csi_beats
    assert by["CSI exceed 7.6 cm"] is csi_beats
