from __future__ import annotations

import numpy as np
import pytest

from models import qc
from models.state import rounds


def _run(values, dt=60.0, params=None):
    params = params or qc.QcParams()
    s = qc.QcState()
    out = []
    for i, v in enumerate(values):
        s, r = qc.step(s, (i * dt, v), params)
        out.append(r)
    return out


def test_clean_series_passes():
    res = _run([0.0, 0.0, 0.5, 1.5, 3.0, 4.0, 3.5, 2.0, 0.5, 0.0])
    assert [r.flag for r in res[2:]] == [qc.PASS] * 8


@pytest.mark.parametrize(
    ("value", "flag", "test"),
    [
        (500.0, qc.FAIL, "gross_range"),
        (200.0, qc.SUSPECT, "gross_range"),
        (-3.0, qc.SUSPECT, "gross_range"),
    ],
)
def test_gross_range(value, flag, test):
    _, r = qc.step(qc.QcState(), (0.0, value), qc.QcParams())
    assert r.tests[test] == flag
    assert r.flag == flag


def test_spike_and_rate_of_change():
    res = _run([2.0, 2.0, 2.0, 90.0])
    assert res[-1].tests["spike"] == qc.FAIL
    assert res[-1].tests["rate_of_change"] == qc.SUSPECT
    assert res[-1].bits & qc.TEST_BITS["spike"]


def test_flat_line_only_away_from_dry_baseline():
    dry = _run([0.0] * 200)
    assert all(r.flag == qc.PASS for r in dry[1:])
    stuck = _run([12.3] * 200)
    assert stuck[40].tests["flat_line"] == qc.SUSPECT
    assert stuck[150].tests["flat_line"] == qc.FAIL


def test_missing_value_is_flag_9_and_keeps_state():
    s = qc.QcState()
    s, _ = qc.step(s, (0.0, 5.0), qc.QcParams())
    s2, r = qc.step(s, (60.0, float("nan")), qc.QcParams())
    assert r.flag == qc.MISSING
    assert s2.p1 == 5.0


def test_climatology_monthly_bounds():
    bounds = tuple((0.0, 10.0) if m != 6 else (0.0, 1.0) for m in range(12))
    p = qc.QcParams(climatology=bounds)
    july = 1_688_169_600.0  # 2023-07-01 UTC
    _, r = qc.step(qc.QcState(), (july, 5.0), p)
    assert r.tests["climatology"] == qc.SUSPECT
    _, r = qc.step(qc.QcState(), (july - 40 * 86400, 5.0), p)
    assert r.tests["climatology"] == qc.PASS


def test_batch_equals_loop_with_repeated_devices():
    rng = np.random.default_rng(1)
    n_dev, n = 5, 300
    dev = rng.integers(0, n_dev, n)
    ts = np.sort(rng.uniform(0, 10_000, n))
    vals = np.abs(rng.normal(3, 10, n))
    vals[rng.random(n) < 0.05] = np.nan
    vals[50:120][dev[50:120] == 2] = 7.0
    states, out = qc.step_batch(qc.QcState.initial_arrays(n_dev), dev, ts, vals, qc.QcParams())
    singles = [qc.QcState() for _ in range(n_dev)]
    for j in range(n):
        singles[dev[j]], r = qc.step(singles[dev[j]], (ts[j], vals[j]), qc.QcParams())
        assert r.flag == out["flag"][j]
        assert r.bits == out["bits"][j]
    for d, s in enumerate(qc.QcState.unstack(states)):
        assert s.equals(singles[d])


def test_rounds_preserve_order():
    idx = np.array([3, 1, 3, 3, 0, 1])
    assert [r.tolist() for r in rounds(idx)] == [[0, 1, 4], [2, 5], [3]]


def test_neighbour_consistency():
    vals = np.array([20.0, 0.0, 20.0, 3.0])
    nb = np.array(
        [[0.0, 0.0, np.nan], [30.0, 25.0, 40.0], [18.0, 25.0, 0.0], [np.nan, 1.0, np.nan]]
    )
    rain = np.array([0.0, 30.0, 10.0, 0.0])
    f = qc.neighbour_consistency(vals, nb, rain)
    assert f.tolist() == [qc.SUSPECT, qc.SUSPECT, qc.PASS, qc.NOT_EVALUATED]


def test_combine_worst_of():
    a = np.array([1, 2, 3, 1, 9])
    b = np.array([2, 2, 4, 1, 1])
    assert qc.combine(a, b).tolist() == [1, 2, 4, 1, 9]
