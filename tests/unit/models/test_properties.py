"""Property tests: arbitrary readings never break the streaming scorers."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from models import bike_forecast, detectors, qc

values = st.lists(
    st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64), st.floats(-1e6, 1e6)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(values)
def test_qc_flags_are_qartod_codes(xs):
    s = qc.QcState()
    for i, x in enumerate(xs):
        s, r = qc.step(s, (60.0 * i, x), qc.QcParams())
        assert r.flag in (1, 2, 3, 4, 9)
        if not np.isfinite(x):
            assert r.flag == 9 or r.flag == 4


@settings(max_examples=60, deadline=None)
@given(values)
def test_detector_scores_stay_in_range(xs):
    s = detectors.DetectorState()
    p = detectors.DetectorParams(warmup=2)
    for i, x in enumerate(xs):
        s, r = detectors.step(s, (60.0 * i, x), p)
        assert 0.0 <= r.score <= 1.0
    assert all(np.isfinite(v) or np.isnan(v) for v in s.to_dict().values())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e4), st.floats(1, 500)), min_size=1, max_size=30))
def test_bike_probabilities_stay_in_range(rows):
    s = bike_forecast.BikeState()
    for i, (bikes, cap) in enumerate(rows):
        s, f = bike_forecast.step(s, (120.0 * i, bikes, cap), bike_forecast.BikeParams())
        assert 0.0 <= f.p_exceed <= 1.0
        assert f.q10 <= f.q50 <= f.q90
