"""Rain: per-gauge intensity, accumulations and a next-hour nowcast; storm cells per grid.

``RainScorer.score(readings, stored)`` folds a batch of gauge readings into each gauge's
rain state (the rain fields of ``models.flood_state.FloodState``: twelve 5-minute bins,
intensity, storm start) and returns one assessment per gauge at its newest reading:
value = intensity (mm/h), detail = rain over the last 15/30/60 minutes and minutes since
the rain started, forecasts = rain expected over the next 15/30/60 minutes. The nowcast
is persistence with decay, the same rain scenarios the reservoir flood forecaster uses:
the rain stops within minutes (q10), decays with a 20-minute half-life (q50), or goes on
at the current rate (q90); ``p_exceed`` gives P(more than 10 / 20 mm in the horizon)
(20 mm/h is the Chinese meteorological service's short-duration heavy rain).

``storm_cells`` turns every gauge's state into a rain rate per grid (its nearest gauge),
marks grids in heavy rain, groups touching heavy grids into storm cells, and says per
district whether a rainstorm covers it (storm mode: the share of its grids in heavy
rain reaches ``storm_share``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gridwatch.contracts import Assessment, Forecast, QcFlag, RainReading
from gridwatch.influx import FieldValue, Point
from gridwatch.registry import Registry
from models import flood_state
from models.flood_forecast import exceedance
from streams.water_scoring import RAIN_FIELDS, rain_state_update

HORIZONS_MIN = (15, 30, 60)
THRESHOLDS_MM = (10.0, 20.0)
# half-lives (minutes) of the three rain scenarios: stops soon, decays, persists
HALF_LIFE_MIN = {"q10": 5.0, "q50": 20.0, "q90": float("inf")}
MODEL_VERSION = "rain-nowcast-1"


@dataclass(frozen=True)
class RainParams:
    heavy_mm_h: float = 10.0
    storm_share: float = 0.5  # share of a district's grids in heavy rain → storm mode
    # storm mode alerts (streams.alerts.storm_step): on once the share has stayed
    # ≥ storm_share for storm_on_s of event time, off once below storm_off_share for storm_off_s
    storm_on_s: float = 300.0
    storm_off_share: float = 0.3
    storm_off_s: float = 900.0
    stale_s: float = 900.0  # a gauge quiet this long says nothing about now


@dataclass
class RainResult:
    states: dict[str, dict[str, Any]]
    assessments: list[Assessment]
    alerts: list[Any] = field(default_factory=list)


def expected_mm(rate_mm_h: np.ndarray, horizon_min: float, half_life_min: float) -> np.ndarray:
    """Rain (mm) over ``horizon_min`` if the rate decays with ``half_life_min``."""
    if not np.isfinite(half_life_min):
        return rate_mm_h * horizon_min / 60.0
    k = np.log(2.0) / half_life_min
    return rate_mm_h / 60.0 * (1.0 - np.exp(-k * horizon_min)) / k


def nowcast(rate_mm_h: np.ndarray) -> dict[str, np.ndarray]:
    """q10/q50/q90 of rain over each horizon, arrays of shape (n, len(HORIZONS_MIN))."""
    rate = np.maximum(np.nan_to_num(rate_mm_h), 0.0)
    return {
        q: np.column_stack([expected_mm(rate, h, hl) for h in HORIZONS_MIN])
        for q, hl in HALF_LIFE_MIN.items()
    }


def rain_now(states: Mapping[str, np.ndarray], now: np.ndarray) -> dict[str, np.ndarray]:
    """Rate (mm/h) and accumulations of rain states at ``now``: the rate is the gauge's
    intensity while fresh, else the last 15 minutes' total × 4 (a gauge reporting
    only accumulations)."""
    totals = flood_state.rain_totals(dict(states), now)
    fresh = np.isfinite(states["t_rain"]) & (now - np.nan_to_num(states["t_rain"]) <= 900.0)
    intensity = np.where(fresh, np.nan_to_num(states["intensity"]), 0.0)
    since = np.where(
        np.isfinite(states["rain_start"]) & (totals[60] > 0),
        (now - np.nan_to_num(states["rain_start"])) / 60.0,
        0.0,
    )
    return {
        "rate_mm_h": np.where(fresh & (intensity > 0), intensity, totals[15] * 4.0),
        "rain_15_mm": totals[15],
        "rain_30_mm": totals[30],
        "rain_60_mm": totals[60],
        "min_since_rain_start": since,
    }


def usable_rain(readings: Sequence[RainReading]) -> tuple[np.ndarray, np.ndarray]:
    """Rain totals and intensities of gauge readings, NaN where absent or where the
    reading failed quality control (a spiked gauge must not flood a district's forecasts:
    its 3,000 mm/h would feed every site it serves for the next hour)."""
    bad = (QcFlag.FAIL, QcFlag.MISSING)
    mm = np.array(
        [np.nan if r.rain_mm is None or r.qc in bad else r.rain_mm for r in readings], dtype=float
    )
    ih = np.array(
        [np.nan if r.intensity_mm_h is None or r.qc in bad else r.intensity_mm_h for r in readings],
        dtype=float,
    )
    return mm, ih


class RainScorer:
    def __init__(self, params: RainParams | None = None) -> None:
        self.params = params or RainParams()

    def score(
        self, readings: Sequence[RainReading], stored: Mapping[str, Mapping[str, Any] | None]
    ) -> RainResult:
        ids = [r.device_id for r in readings]
        ts = np.array([r.ts.timestamp() for r in readings])
        mm, ih = usable_rain(readings)
        states = rain_state_update(stored, ids, ts, mm, ih)
        newest: dict[str, RainReading] = {}
        for r in readings:
            if r.device_id not in newest or r.ts >= newest[r.device_id].ts:
                newest[r.device_id] = r
        gauges = sorted(newest)
        arrays = {k: np.array([states[g][k] for g in gauges]) for k in RAIN_FIELDS}
        now = np.array([newest[g].ts.timestamp() for g in gauges])
        figures = rain_now(arrays, now)
        cast = nowcast(figures["rate_mm_h"])
        assessments = []
        for i, g in enumerate(gauges):
            r = newest[g]
            forecasts = [
                Forecast(
                    horizon_min=h,
                    q10=float(cast["q10"][i, k]),
                    q50=float(cast["q50"][i, k]),
                    q90=float(cast["q90"][i, k]),
                    p_exceed={
                        f"{t:.1f}": float(
                            exceedance(
                                cast["q10"][i, k : k + 1],
                                cast["q50"][i, k : k + 1],
                                cast["q90"][i, k : k + 1],
                                t,
                            )[0]
                        )
                        for t in THRESHOLDS_MM
                    },
                )
                for k, h in enumerate(HORIZONS_MIN)
            ]
            rate = float(figures["rate_mm_h"][i])
            assessments.append(
                Assessment(
                    device_id=g,
                    kind="rain",
                    ts=r.ts,
                    grid_id=r.grid_id,
                    district_id=r.district_id,
                    value=rate,
                    qc=r.qc if r.qc != QcFlag.NOT_EVALUATED else QcFlag.PASS,
                    forecasts=forecasts,
                    risk=float(np.clip(rate / (2 * self.params.heavy_mm_h), 0.0, 1.0)),
                    model_version=MODEL_VERSION,
                    detail={
                        k: float(figures[k][i])
                        for k in ("rain_15_mm", "rain_30_mm", "rain_60_mm", "min_since_rain_start")
                    },
                )
            )
        return RainResult({g: dict(s) for g, s in states.items()}, assessments)


# -- storm cells -------------------------------------------------------------------------


@dataclass(frozen=True)
class StormPicture:
    """Per grid: rate, whether heavy, its storm cell ("" outside one); per district:
    share of grids in heavy rain and storm mode."""

    time_ms: int
    rate_mm_h: dict[str, float]
    next_60_mm: dict[str, float]
    cell: dict[str, str]
    heavy_share: dict[str, float]
    storm_mode: dict[str, bool]

    def points(self, registry: Registry) -> list[Point]:
        out = []
        for grid, rate in self.rate_mm_h.items():
            district = registry.ancestor(grid, "district") or ""
            fields: dict[str, FieldValue] = {
                "rate_mm_h": rate,
                "next_60_mm": self.next_60_mm[grid],
                "heavy": bool(self.cell[grid]),
                "cell": self.cell[grid],
            }
            out.append(
                Point("rain_grid", {"grid": grid, "district": district}, fields, self.time_ms)
            )
        for district, share in self.heavy_share.items():
            cells = {
                c
                for g, c in self.cell.items()
                if c and registry.ancestor(g, "district") == district
            }
            fields = {
                "heavy_share": share,
                "cells": len(cells),
                "storm_mode": self.storm_mode[district],
            }
            out.append(Point("storm", {"district": district}, fields, self.time_ms))
        return out


class StormCells:
    """Grids' nearest gauges and adjacency, computed once per registry."""

    def __init__(self, registry: Registry, params: RainParams | None = None) -> None:
        self.registry = registry
        self.params = params or RainParams()
        self.grids = sorted(g for g, info in registry.grids.items() if info.level == "grid")
        gauges = registry.devices_of("rain")
        self.gauges = [p.device.device_id for p in gauges]
        self.nearest: dict[str, str] = {}
        if gauges:
            g_xy = np.array([[p.device.lon, p.device.lat] for p in gauges])
            for grid in self.grids:
                c = registry.geometry[grid].centroid
                d = np.hypot(g_xy[:, 0] - c.x, g_xy[:, 1] - c.y)
                self.nearest[grid] = self.gauges[int(np.argmin(d))]
        self.adjacent = registry.neighbours_of(self.grids)
        self.district = {g: registry.ancestor(g, "district") or "" for g in self.grids}

    def picture(self, states: Mapping[str, Mapping[str, float]], now: float) -> StormPicture:
        known = [g for g in self.gauges if states.get(g)]
        rate: dict[str, float] = {}
        nxt: dict[str, float] = {}
        if known:
            arrays = {
                k: np.array([float(states[g].get(k, np.nan)) for g in known]) for k in RAIN_FIELDS
            }
            figures = rain_now(arrays, np.full(len(known), now))
            cast = nowcast(figures["rate_mm_h"])
            by_gauge = {g: i for i, g in enumerate(known)}
            for grid in self.grids:
                i = by_gauge.get(self.nearest.get(grid, ""))
                rate[grid] = float(figures["rate_mm_h"][i]) if i is not None else 0.0
                nxt[grid] = float(cast["q50"][i, -1]) if i is not None else 0.0
        else:
            rate = {g: 0.0 for g in self.grids}
            nxt = dict(rate)
        heavy = {g for g in self.grids if rate[g] >= self.params.heavy_mm_h}
        cell = {g: "" for g in self.grids}
        for g in sorted(heavy):  # flood fill: a cell is named after its first grid
            if cell[g]:
                continue
            cell[g] = g
            todo = [g]
            while todo:
                for n in self.adjacent.get(todo.pop(), ()):
                    if n in heavy and not cell[n]:
                        cell[n] = g
                        todo.append(n)
        share: dict[str, float] = {}
        for district in sorted(set(self.district.values())):
            grids = [g for g in self.grids if self.district[g] == district]
            share[district] = sum(g in heavy for g in grids) / max(len(grids), 1)
        return StormPicture(
            time_ms=int(now // 60 * 60 * 1000),
            rate_mm_h=rate,
            next_60_mm=nxt,
            cell=cell,
            heavy_share=share,
            storm_mode={d: s >= self.params.storm_share for d, s in share.items()},
        )
