"""The water scorer over a synthetic storm at one site: rain then rising water."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridwatch.contracts import QcFlag, WaterReading
from gridwatch.registry import Registry
from models.flood_state import RainHistory
from simulators.city import generate_city
from streams.water_scoring import WaterScorer, rain_state_update

T0 = datetime(2026, 7, 1, 14, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return generate_city(5, "small").registry()


def storm(minutes: int = 180) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(minutes)
    rain = np.where((t > 20) & (t < 80), 60.0 * np.exp(-0.5 * ((t - 45) / 12) ** 2), 0.0)
    depth = np.zeros(minutes)
    for i in range(1, minutes):
        depth[i] = max(0.0, depth[i - 1] + rain[i] * 0.02 - 0.25 * (depth[i - 1] > 0))
    return rain, depth


def run(
    registry: Registry,
    depth: np.ndarray,
    rain: np.ndarray,
    flag: QcFlag = QcFlag.NOT_EVALUATED,
    batch: int = 1,
    view: str = "aligned",
):  # type: ignore[no-untyped-def]
    """``view``: how the scorer sees the gauge — ``aligned`` (the rain folded batch by
    batch with the water), ``history`` (the whole storm's rain read first, as a view
    running ahead of the water holds it, looked up at each reading's time) or
    ``newest`` (the same view, its newest state only)."""
    scorer = WaterScorer(registry)
    site = registry.devices_of("water")[0]
    gauge = scorer.gauge_of[site.device.device_id]
    assert gauge is not None
    stored: dict = {}
    gauges: dict = {}
    kinds = []
    assessments = []
    readings = [
        WaterReading(
            device_id=site.device.device_id,
            ts=T0 + timedelta(minutes=i),
            received_at=T0 + timedelta(minutes=i),
            grid_id=site.grid_id,
            district_id=site.district_id,
            level_cm=float(depth[i]),
            qc=flag,
        )
        for i in range(len(depth))
    ]
    history = RainHistory()
    if view != "aligned":
        for i, r in enumerate(readings):
            gauges.update(
                rain_state_update(
                    gauges,
                    [gauge],
                    np.array([r.ts.timestamp()]),
                    rain[i : i + 1] / 60.0,
                    rain[i : i + 1],
                )
            )
            history.record(gauge, r.ts.timestamp(), gauges[gauge])
    for start in range(0, len(readings), batch):
        chunk = readings[start : start + batch]
        ts = np.array([r.ts.timestamp() for r in chunk])
        if view == "aligned":
            gauges.update(
                rain_state_update(
                    gauges,
                    [gauge] * len(chunk),
                    ts,
                    rain[start : start + batch] / 60.0,
                    rain[start : start + batch],
                )
            )
        result = scorer.score(chunk, stored, history.at if view == "history" else gauges)
        stored.update(result.states)
        kinds += [a.kind for a in result.alerts]
        assessments += result.assessments
    return kinds, assessments


def test_storm_is_foreseen_observed_and_cleared(registry: Registry) -> None:
    rain, depth = storm()
    assert depth.max() > 20
    kinds, assessments = run(registry, depth, rain)
    assert kinds[0] == "forecast"
    assert "observed" in kinds
    assert kinds[-1] == "clear"
    assert len(assessments) == len(depth)
    first_forecast = next(i for i, a in enumerate(assessments) if a.risk >= 0.6)
    first_over = int(np.argmax(depth >= 15))
    assert first_forecast < first_over, "the pre-alert must come before the water"


def test_dry_day_raises_nothing(registry: Registry) -> None:
    kinds, assessments = run(registry, np.zeros(120), np.zeros(120))
    assert kinds == []
    assert max(a.risk for a in assessments) < 0.1


def test_failed_sensor_never_opens_a_flood_incident(registry: Registry) -> None:
    kinds, _ = run(registry, np.full(60, 80.0), np.zeros(60), flag=QcFlag.FAIL)
    assert kinds == ["maintenance"]  # a device fault ticket, never a flood one


def test_batches_give_the_same_alerts_as_single_readings(registry: Registry) -> None:
    rain, depth = storm()
    singles, _ = run(registry, depth, rain, batch=1)
    batched, _ = run(registry, depth, rain, batch=7)
    assert [k for k in singles if k != "forecast"] == [k for k in batched if k != "forecast"]
    assert singles.count("forecast") == batched.count("forecast")


@pytest.mark.parametrize("batch", [1, 7])
def test_a_view_read_ahead_of_the_water_gives_each_site_the_rain_of_its_time(
    registry: Registry, batch: int
) -> None:
    rain, depth = storm()
    aligned, a_aligned = run(registry, depth, rain, batch=batch)
    ahead, a_ahead = run(registry, depth, rain, batch=batch, view="history")
    assert ahead == aligned
    assert [a.risk for a in a_ahead] == pytest.approx([a.risk for a in a_aligned])
    # the newest state alone (the storm already over) hides the rain: a later pre-alert,
    # or none (a forecast without agreeing rain stays below p_on)
    _, a_newest = run(registry, depth, rain, batch=batch, view="newest")
    first = [
        next((i for i, a in enumerate(x) if a.risk >= 0.6), len(x)) for x in (a_aligned, a_newest)
    ]
    assert first[0] < first[1]


def test_stuck_sensor_raises_a_device_fault_not_a_flood(registry: Registry) -> None:
    kinds, _ = run(registry, np.full(90, 42.0), np.zeros(90))
    assert "forecast" not in kinds
    assert kinds == ["maintenance"], kinds


def test_fault_clears_when_readings_recover(registry: Registry) -> None:
    values = np.r_[np.full(60, 42.0), np.abs(np.sin(np.arange(60) / 3.0)) * 0.5]
    kinds, _ = run(registry, values, np.zeros(120))
    assert kinds[0] == "maintenance"
    assert kinds[-1] == "clear"


def test_independent_modalities_raise_confidence_a_lone_questionable_sensor_does_not() -> None:
    from streams.water_scoring import WaterParams, fuse

    prm = WaterParams()
    p = np.array([0.7])
    dry = np.array([0.0])
    ok = np.array([QcFlag.PASS])
    suspect = np.array([QcFlag.SUSPECT])
    one = np.array([1.0])
    alone = fuse(p, dry, ok, prm)[0]
    # a certain forecast alone in dry weather stays below the pre-alert threshold
    assert fuse(np.array([1.0]), dry, ok, prm)[0] < prm.hygiene.p_on
    assert fuse(p, np.array([20.0]), ok, prm)[0] > alone  # the rain gauge agrees
    assert fuse(p, dry, ok, prm, neighbour=one)[0] > alone  # a neighbour is flooded
    assert fuse(p, dry, ok, prm, camera=one)[0] > alone  # a camera sees water
    everything = fuse(p, np.array([20.0]), ok, prm, one, one)[0]
    assert everything == pytest.approx(fuse(p, np.array([20.0]), ok, prm)[0])  # saturates
    assert everything > 0.8
    lone_suspect = fuse(np.array([1.0]), dry, suspect, prm)[0]
    assert lone_suspect <= 0.3  # hygiene's threshold is far above
    assert fuse(np.array([1.0]), dry, suspect, prm, camera=one)[0] > 0.9  # confirmed
    assert fuse(p, np.array([20.0]), np.array([QcFlag.FAIL]), prm, one, one)[0] == 0.0


def test_support_counts_fresh_neighbours_and_cameras_only(registry: Registry) -> None:
    scorer = WaterScorer(registry)
    site = next(d for d, n in scorer.neighbours.items() if n)
    other = scorer.neighbours[site][0]
    now = np.array([T0.timestamp()])
    nb, cam = scorer.support([site], now, {other: (T0.timestamp() - 60, 7.6)})
    assert nb[0] == 1.0 and cam[0] == 0.0
    nb, _ = scorer.support([site], now, {other: (T0.timestamp() - 3600, 30.0)})
    assert nb[0] == 0.0  # an hour old: says nothing about now
    nb, _ = scorer.support([site], now, {other: (T0.timestamp() + 30, 7.6)})
    assert nb[0] == 1.0  # the same minute, by another device's clock
    nb, _ = scorer.support([site], now, {other: (T0.timestamp() + 1800, 30.0)})
    assert nb[0] == 0.0  # seen half an hour after this reading: not known at its time
    watched = next((d for d, c in scorer.cameras.items() if c), None)
    if watched is not None:
        _, cam = scorer.support(
            [watched], now, {scorer.cameras[watched][0]: (T0.timestamp(), 0.125)}
        )
        assert cam[0] == pytest.approx(0.5)
