"""Rain job core: gauge assessments with a next-hour nowcast, and storm cells per grid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridwatch.contracts import RainReading
from gridwatch.registry import Registry
from simulators.city import generate_city
from streams.rain_scoring import RainScorer, StormCells, expected_mm, nowcast

T0 = datetime(2026, 7, 1, 14, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return generate_city(5, "small").registry()


def rain(registry: Registry, gauge: int, minute: int, mm_h: float) -> RainReading:
    p = registry.devices_of("rain")[gauge]
    ts = T0 + timedelta(minutes=minute)
    return RainReading(
        device_id=p.device.device_id,
        ts=ts,
        received_at=ts,
        grid_id=p.grid_id,
        district_id=p.district_id,
        rain_mm=mm_h / 60.0,
        intensity_mm_h=mm_h,
    )


def test_nowcast_quantiles_are_ordered_and_grow_with_the_horizon() -> None:
    cast = nowcast(np.array([0.0, 12.0, 60.0]))
    assert np.all(cast["q10"] <= cast["q50"]) and np.all(cast["q50"] <= cast["q90"])
    assert np.all(np.diff(cast["q90"], axis=1) >= 0)
    assert cast["q90"][1, -1] == pytest.approx(12.0)  # persists for an hour
    assert np.all(cast["q50"][0] == 0.0)  # no rain, none expected
    assert expected_mm(np.array([60.0]), 60, 20.0)[0] == pytest.approx(
        60 / 60 * 20 / np.log(2) * (1 - 2**-3)
    )


def test_a_batch_gives_one_assessment_per_gauge_at_its_newest_reading(
    registry: Registry,
) -> None:
    scorer = RainScorer()
    readings = [rain(registry, g, m, 30.0) for m in range(20) for g in (0, 1)]
    result = scorer.score(readings, {})
    assert [a.device_id for a in result.assessments] == sorted({r.device_id for r in readings})
    a = result.assessments[0]
    assert a.ts == T0 + timedelta(minutes=19)
    assert a.value == pytest.approx(30.0)
    assert a.detail["rain_15_mm"] == pytest.approx(7.5, abs=2.6)  # 5-minute bins
    f60 = next(f for f in a.forecasts if f.horizon_min == 60)
    assert 0 < f60.q10 < f60.q50 < f60.q90 == pytest.approx(30.0)
    assert f60.p_exceed["20.0"] > 0.2 and f60.p_exceed["10.0"] > f60.p_exceed["20.0"]
    # the states carry on: a later dry batch says the rain stopped
    later = scorer.score([rain(registry, 0, 90, 0.0)], result.states)
    assert later.assessments[0].value == 0.0
    assert later.assessments[0].forecasts[-1].q50 == 0.0


def test_storm_cells_group_touching_heavy_grids_and_storm_mode_needs_coverage(
    registry: Registry,
) -> None:
    cells = StormCells(registry)
    scorer = RainScorer()
    gauges = registry.devices_of("rain")
    now = (T0 + timedelta(minutes=20)).timestamp()
    dry = cells.picture({}, now)
    assert not any(dry.cell.values()) and not any(dry.storm_mode.values())

    everywhere = scorer.score(
        [rain(registry, g, m, 40.0) for m in range(20) for g in range(len(gauges))], {}
    ).states
    wet = cells.picture(everywhere, now)
    assert all(wet.cell.values())  # every grid in heavy rain
    assert all(wet.storm_mode.values())
    # touching grids share a cell: the number of cells is the number of connected parts
    assert len(set(wet.cell.values())) <= len(cells.grids)
    for g, neighbours in cells.adjacent.items():
        for n in neighbours:
            assert wet.cell[g] == wet.cell[n]

    one = scorer.score([rain(registry, 0, m, 40.0) for m in range(20)], {}).states
    local = cells.picture(one, now)
    heavy = {g for g, c in local.cell.items() if c}
    assert heavy and heavy == {
        g for g in cells.grids if cells.nearest[g] == gauges[0].device.device_id
    }
    points = local.points(registry)
    assert {p.measurement for p in points} == {"rain_grid", "storm"}
    assert all(p.time_ms % 60_000 == 0 for p in points)


def test_a_gauge_reading_that_failed_qc_does_not_rain(registry: Registry) -> None:
    from gridwatch.contracts import QcFlag

    scorer = RainScorer()
    spike = rain(registry, 0, 0, 3000.0).model_copy(update={"qc": QcFlag.FAIL})
    result = scorer.score([spike, rain(registry, 0, 1, 0.0)], {})
    a = result.assessments[0]
    assert a.value == 0.0 and a.detail["rain_60_mm"] == 0.0
    assert a.forecasts[-1].q90 == 0.0
