from __future__ import annotations

import json

import numpy as np
import pytest

from models import bike_forecast as bf
from models import camera_baseline as cb
from models.errors import StateError

MONDAY = 1_700_438_400.0  # 2023-11-20 00:00 UTC, a Monday


def _station(days: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    ts = MONDAY + 300.0 * np.arange(days * 288)
    hour = (ts % 86400) / 3600
    weekday = ((np.floor(ts / 86400) + 3) % 7) < 5
    rate = np.where(weekday & (hour > 7) & (hour < 10), 3.0, 0.0) - np.where(hour > 17, 0.75, 0.0)
    rate = rate + rng.normal(0, 0.75, ts.size)
    bikes = np.zeros(ts.size)
    cur = 20.0
    for i in range(ts.size):
        if i and ts[i] // 86400 != ts[i - 1] // 86400:
            cur = 20.0
        cur = max(cur + rate[i], 0.0)
        bikes[i] = cur
    return ts, np.round(bikes)


def test_bike_forecast_beats_persistence_and_is_informative():
    ts, bikes = _station(14)
    _, out = bf.step_batch(
        bf.BikeState.initial_arrays(1),
        np.zeros(ts.size, np.int64),
        ts,
        bikes,
        np.full(ts.size, 100.0),
        bf.BikeParams(),
    )
    h = 6  # 6 readings of 5 min = 30 min
    second_week = slice(ts.size // 2, ts.size - h)
    target = bikes[h:][second_week.start : second_week.stop]
    mae = np.abs(out["q50"][second_week] - target).mean()
    persist = np.abs(bikes[second_week] - target).mean()
    assert mae < 0.9 * persist
    exceed = target > 100
    assert 0.05 < exceed.mean() < 0.6
    brier = ((out["p_exceed"][second_week] - exceed) ** 2).mean()
    assert brier < 0.5 * ((exceed.mean() - exceed) ** 2).mean()


def _camera_week(seed=0, vendor_at=None):
    rng = np.random.default_rng(seed)
    ts = MONDAY + 300.0 * np.arange(4 * 7 * 288)
    hour = (ts % 86400) / 3600
    person = rng.poisson(np.where((hour > 8) & (hour < 20), 30, 3))
    vendor = rng.poisson(np.where((hour > 18) & (hour < 21), 2.0, 0.02))
    garbage = rng.poisson(0.05, ts.size)
    road = rng.poisson(0.05, ts.size)
    counts = np.column_stack([vendor, garbage, road, person]).astype(float)
    if vendor_at is not None:
        counts[vendor_at : vendor_at + 6, 0] = 3
    return ts, counts


def test_camera_unusual_vendor_gets_high_probability_usual_one_does_not():
    # three weeks of history, then a vendor at 10:00 on a Wednesday (never seen then)
    week = 7 * 288
    at = 3 * week + 2 * 288 + 120
    ts, counts = _camera_week(vendor_at=at)
    st, probs = cb.step_batch(
        cb.initial(1), np.zeros(ts.size, np.int64), ts, counts, cb.CameraParams()
    )
    assert probs[at + 3, 0] > 0.5
    evening = 3 * week + 2 * 288 + 235  # 19:35 on that Wednesday, vendors usual
    assert probs[evening, 0] < 0.5
    quiet = probs[3 * week : at, :3]
    assert (quiet > 0.5).mean() < 0.01
    exp = cb.expected(st, np.array([0]), np.array([ts[evening]]))
    assert exp[0, 0] == pytest.approx(2.0, abs=0.8)


def test_camera_batch_equals_loop_and_state_round_trip():
    ts, counts = _camera_week(seed=1)
    ts, counts = ts[:600], counts[:600]
    rng = np.random.default_rng(3)
    cam = rng.integers(0, 3, ts.size)
    counts[rng.random(ts.size) < 0.05, 1] = np.nan
    st, probs = cb.step_batch(cb.initial(3), cam, ts, counts, cb.CameraParams())
    singles = [cb.initial(1) for _ in range(3)]
    for j in range(ts.size):
        singles[cam[j]], p = cb.step_batch(
            singles[cam[j]], np.array([0]), ts[j : j + 1], counts[j : j + 1], cb.CameraParams()
        )
        np.testing.assert_allclose(p[0], probs[j])
    for c in range(3):
        doc = json.loads(json.dumps(cb.to_dict(st, c)))
        back = cb.from_dicts([doc])
        for k in st:
            np.testing.assert_array_equal(back[k][0], st[k][c])
            np.testing.assert_array_equal(back[k][0], singles[c][k][0])
    with pytest.raises(StateError):
        cb.from_dicts([{"mean": [1.0]}])


def test_camera_constant_and_missing_input():
    ts = MONDAY + 300.0 * np.arange(2000)
    st, probs = cb.step_batch(
        cb.initial(1), np.zeros(2000, np.int64), ts, np.zeros((2000, 4)), cb.CameraParams()
    )
    assert np.all(np.isfinite(probs)) and probs.max() < 0.5
    st2, p2 = cb.step_batch(
        st, np.array([0]), ts[-1:] + 300, np.full((1, 4), np.nan), cb.CameraParams()
    )
    assert np.all(p2 == 0)
    np.testing.assert_array_equal(st2["mean"], st["mean"])


def test_crowding_is_judged_only_against_a_learned_hour() -> None:
    """A busy street seen for the first time at rush hour is not a crowd (no prior for
    people); once its hour of week has learned ~40 people, 150 is."""
    person = cb.CLASSES.index("person")
    ts = MONDAY + 8 * 3600 + 300.0 * np.arange(12)  # Monday 08:00-09:00, every 5 min
    counts = np.zeros((ts.size, len(cb.CLASSES)))
    counts[:, person] = 60.0
    _, probs = cb.step_batch(
        cb.initial(1), np.zeros(ts.size, np.int64), ts, counts, cb.CameraParams()
    )
    assert probs[: int(cb.CameraParams().min_count), person].max() == 0.0
    assert probs[:, person].max() < 0.5
    week = 7 * 86400.0
    later = np.concatenate([ts, ts + week])
    counts = np.zeros((later.size, len(cb.CLASSES)))
    counts[:, person] = 40.0
    counts[-4:, person] = 150.0
    _, probs = cb.step_batch(
        cb.initial(1), np.zeros(later.size, np.int64), later, counts, cb.CameraParams()
    )
    assert probs[-1, person] > 0.8


def test_a_bin_learned_in_a_downpour_is_not_the_streets_normal() -> None:
    """People counts damped by heavy rain for half an hour, then back to six times as
    many: the bin learned minutes ago, so no crowding is judged (a week later it is)."""
    person = cb.CLASSES.index("person")
    ts = MONDAY + 13 * 3600 + 60.0 * np.arange(60)  # Monday 13:00-14:00, every minute
    counts = np.zeros((ts.size, len(cb.CLASSES)))
    counts[:, person] = np.where(np.arange(ts.size) < 30, 10.0, 60.0)
    _, probs = cb.step_batch(
        cb.initial(1), np.zeros(ts.size, np.int64), ts, counts, cb.CameraParams()
    )
    assert probs[:, person].max() == 0.0
