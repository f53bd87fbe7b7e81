"""Physics sanity: rain, ponding, recession, drainage, storm motion, commute peaks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.crowds import BikeModel, BikeSites, commute_profile
from simulators.scenario import StormSpec, WeatherSpec
from simulators.water import WaterModel, WaterSites
from simulators.weather import RainField, chicago, idf_intensity, storm_depth_mm


def storm(**kw: object) -> StormSpec:
    doc = {"return_period_y": 10, "duration": "2h", **kw}
    return StormSpec.model_validate(doc)


def sites(n: int = 1, drainage: float = 30.0) -> WaterSites:
    return WaterSites(
        catchment_m2=np.full(n, 10_000.0),
        basin_m2=np.full(n, 600.0),
        drainage_mm_h=np.full(n, drainage),
        runoff_coeff=np.full(n, 0.75),
        lag_s=np.full(n, 600.0),
    )


def run_water(
    model: WaterModel, return_period: float, hours: float = 6.0, dt: float = 10.0
) -> np.ndarray:
    """Depth (cm) per step under a 2-hour Chicago storm; shape (steps, sites)."""
    steps = int(hours * 3600 / dt)
    n = len(model.storage_m3)
    out = np.empty((steps, n))
    for k in range(steps):
        i = chicago(np.array([k * dt / 60.0]), 120.0, return_period, 0.4)[0]
        out[k] = model.step(np.full(n, i), dt)
    return out


@pytest.mark.parametrize("period", [1, 2, 10, 50, 100])
@pytest.mark.parametrize("ratio", [0.2, 0.4, 0.6])
def test_chicago_hyetograph_holds_the_idf_depth_and_peaks_at_r(period: float, ratio: float) -> None:
    t = np.linspace(0, 120, 240_001)
    i = chicago(t, 120.0, period, ratio)
    assert np.trapezoid(i, t) / 60 == pytest.approx(storm_depth_mm(120, period), rel=1e-3)
    assert t[np.argmax(i)] == pytest.approx(120 * ratio, abs=0.01)
    assert (
        i[0] > 0 and i[-1] > 0 and (chicago(np.array([-1.0, 121.0]), 120, period, ratio) == 0).all()
    )


def test_idf_grows_with_return_period_and_falls_with_duration() -> None:
    assert idf_intensity(60, 50) > idf_intensity(60, 10) > idf_intensity(60, 2)
    assert idf_intensity(30, 10) > idf_intensity(60, 10) > idf_intensity(180, 10)
    # Shanghai-like magnitudes: the 50-year hour brings 80-100 mm.
    assert 80 < idf_intensity(60, 50) < 100


def test_more_rain_gives_more_and_deeper_water() -> None:
    n = 20
    rng = np.random.default_rng(1)
    s = WaterSites(
        catchment_m2=rng.uniform(3_000, 15_000, n),
        basin_m2=rng.uniform(300, 1_200, n),
        drainage_mm_h=rng.uniform(15, 50, n),
        runoff_coeff=rng.uniform(0.6, 0.9, n),
        lag_s=rng.uniform(300, 1_200, n),
    )
    peaks = {p: run_water(WaterModel(s), p).max(axis=0) for p in (1, 5, 50)}
    assert (peaks[5] >= peaks[1]).all() and (peaks[50] >= peaks[5]).all()
    assert peaks[50].mean() > peaks[5].mean() > peaks[1].mean()
    assert (peaks[50] > 15).sum() > (peaks[5] > 15).sum() >= (peaks[1] > 15).sum()


def test_bigger_drainage_gives_less_water() -> None:
    depth = np.column_stack(
        [run_water(WaterModel(sites(1, d)), 10)[:, 0] for d in (20.0, 35.0, 50.0)]
    )
    peaks = depth.max(axis=0)
    assert peaks[0] > peaks[1] > peaks[2]
    wet = (depth > 1).sum(axis=0)
    assert wet[0] > wet[1] > wet[2]


def test_depth_rises_with_a_lag_and_recedes_after_the_rain() -> None:
    depth = run_water(WaterModel(sites(1, 25.0)), 20)[:, 0]
    t_min = np.arange(len(depth)) * 10 / 60
    peak_rain_min = 120 * 0.4
    assert t_min[np.argmax(depth)] > peak_rain_min  # lag
    after = depth[t_min > 120]  # the storm is over
    assert after[0] > 10
    assert (np.diff(after) <= 1e-9).all()  # only recedes
    assert after[-1] < 0.5  # and drains away


def test_blocked_drains_hold_more_water() -> None:
    clear = run_water(WaterModel(sites(1)), 5).max()
    blocked = run_water(WaterModel(sites(1), blockage=0.4), 5).max()
    assert blocked > clear


@settings(max_examples=40, deadline=None)
@given(
    intensity=st.lists(st.floats(0, 300), min_size=1, max_size=50),
    drainage=st.floats(1, 100),
)
def test_depth_is_never_negative_or_nan(intensity: list[float], drainage: float) -> None:
    model = WaterModel(sites(1, drainage))
    for i in intensity:
        d = model.step(np.array([i]), 60.0)
        assert np.isfinite(d).all() and (d >= 0).all()


def test_a_storm_reaches_sites_in_order_of_distance() -> None:
    # Points along the storm's direction of travel (towards the east).
    x = np.array([100.0, 1_000.0, 2_500.0, 4_000.0, 5_900.0])
    y = np.full(5, 1_000.0)
    spec = WeatherSpec(storms=[storm(direction_deg=90, speed="10 m/s", width="20 km")])
    field = RainField(spec, x, y, (6_000.0, 2_000.0), 4 * 3600, 10, np.random.default_rng(0))
    first_wet = np.full(5, -1)
    for k in range(0, 4 * 360):
        wet = field.intensity(k * 10.0) > 0.1
        first_wet = np.where((first_wet < 0) & wet, k * 10, first_wet)
    assert (first_wet >= 0).all()
    assert (np.diff(first_wet) > 0).all()
    # ... at the storm's speed.
    assert (first_wet[-1] - first_wet[0]) == pytest.approx((5_900 - 100) / 10, abs=20)


def test_rain_band_is_weaker_off_its_centre_line() -> None:
    x = np.array([3_000.0, 3_000.0])
    y = np.array([1_000.0, 9_000.0])  # centre line runs east through y = 1 000 m
    spec = WeatherSpec(storms=[storm(direction_deg=90, width="3 km")])
    field = RainField(spec, x, y, (6_000.0, 2_000.0), 4 * 3600, 10, np.random.default_rng(0))
    total = sum(field.intensity(k * 60.0) for k in range(240))
    assert total[0] > 2 * total[1]


def test_drizzle_covers_about_the_asked_share_of_time() -> None:
    spec = WeatherSpec(background="drizzle", drizzle_cover=0.5, drizzle_intensity="1 mm/h")
    field = RainField(
        spec, np.zeros(3), np.zeros(3), (1.0, 1.0), 20 * 86400, 60, np.random.default_rng(3)
    )
    assert 0.3 < field.drizzle_on.mean() < 0.7
    dry = RainField(
        WeatherSpec(), np.zeros(3), np.zeros(3), (1.0, 1.0), 3600, 60, np.random.default_rng(3)
    )
    assert not dry.intensity(1800).any()


def test_commute_profile_peaks_at_rush_hours_and_weekends_are_quiet() -> None:
    hours = np.arange(0, 24, 0.25)
    morning = [commute_profile(h, 1)[0] for h in hours]
    evening = [commute_profile(h, 1)[1] for h in hours]
    assert 7.5 <= hours[int(np.argmax(morning))] <= 9
    assert 17.5 <= hours[int(np.argmax(evening))] <= 19
    assert commute_profile(8.2, 6)[0] < 0.5 * commute_profile(8.2, 1)[0]


def test_bikes_pile_up_at_residential_exits_in_the_morning_and_business_in_the_evening() -> None:
    n = 40
    rng = np.random.default_rng(5)
    sites_ = BikeSites(
        capacity=np.full(n, 100.0),
        mix=np.tile([0.5, 0.3, 0.2], (n, 1)),
        residential=np.arange(n) < n // 2,
        amplitude=np.full(n, 0.5),
    )
    model = BikeModel(sites_, rng)
    model.ROUNDS_LOCAL_H = ()  # no scheduled rebalancing: watch the commute alone
    model.RESPONSE_S = 1e12
    series = []
    for k in range(24 * 60):
        hour = k / 60
        model.step(60.0, hour, 1, 0.0)
        series.append(model.bikes().copy())
    arr = np.array(series)
    res, bus = arr[:, : n // 2].mean(axis=1), arr[:, n // 2 :].mean(axis=1)
    at = lambda h: int(h * 60)  # noqa: E731
    assert res[at(10)] > res[at(6)] + 20  # residential exits fill during the morning peak
    assert bus[at(10)] < bus[at(6)] - 10  # business exits empty
    assert bus[at(20)] > bus[at(16)] + 20  # and fill in the evening
    # The steepest change of the residential sites falls in the commute hours.
    steepest = float(np.argmax(np.abs(np.diff(res))) / 60)
    assert 7 <= steepest <= 9.5 or 17 <= steepest <= 19.5


def test_rain_damps_riding() -> None:
    def morning_gain(rain: float) -> float:
        s = BikeSites(
            np.full(10, 100.0),
            np.tile([0.5, 0.3, 0.2], (10, 1)),
            np.ones(10, bool),
            np.full(10, 0.5),
        )
        m = BikeModel(s, np.random.default_rng(2))
        m.ROUNDS_LOCAL_H = ()
        before = m.bikes().sum()
        for k in range(6 * 60, 10 * 60):
            m.step(60.0, k / 60, 1, rain)
        return float(m.bikes().sum() - before)

    assert morning_gain(0.0) > 2 * morning_gain(20.0)


def test_the_whole_generator_floods_more_under_a_rarer_storm() -> None:
    from simulators.engine import Simulation
    from simulators.scenario import parse_scenario

    def run(period: int) -> tuple[int, float, int]:
        sc = parse_scenario(
            "name: p\nstart: 2026-07-14T07:00:00Z\nduration: 2h\ncity: {size: small, seed: 7}\n"
            f"weather: {{storms: [{{return_period_y: {period}, duration: 1h, start: 5min}}]}}\n"
        )
        sim = Simulation(sc, np.random.default_rng(1))
        for _ in sim.messages():
            pass
        water = [i for i in sim.truth.incidents if i.category.value == "waterlogging"]
        worthy = sum(1 for i in water if i.complaint_worthy_at is not None)
        return len(water), max((i.peak for i in water), default=0.0), worthy

    light, heavy = run(1), run(50)
    assert heavy[0] > light[0] and heavy[1] > light[1] and heavy[2] > light[2]
