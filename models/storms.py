"""A small, pure storm-and-pond generator for training and testing the flood models.

Not the project's simulator (``models/`` must not import ``simulators``): a seeded
numpy generator of design storms over many sites with per-site physics that differs
from the default forecaster's assumptions (runoff coefficient 0.55–0.95, lag 4–25 min,
inlet blockage up to 60 %, nonlinear pond shape), plus sensor noise and dropouts, so
that the forecasters are trained and scored on something they do not encode exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models import flood_state
from models.flood_forecast import HORIZONS_MIN, MM_H_TO_M_S, Sites


@dataclass(frozen=True)
class StormRun:
    t0: float
    ts: np.ndarray  # (T,) epoch s, 1-min steps
    rain_mm: np.ndarray  # (T, n) rain per minute at each site's gauge
    depth_obs: np.ndarray  # (T, n) observed depth cm (NaN = dropout)
    depth_true: np.ndarray  # (T, n)
    sites: Sites


def _hyetograph(rng: np.random.Generator, minutes: int) -> np.ndarray:
    out = np.zeros(minutes)
    t = int(rng.integers(60, 240))
    while t < minutes - 30:
        dur = int(rng.integers(30, 180))
        peak = float(rng.choice([10.0, 25.0, 45.0, 75.0, 120.0], p=[0.2, 0.25, 0.25, 0.2, 0.1]))
        peak *= float(rng.uniform(0.7, 1.3))
        r = float(rng.uniform(0.25, 0.6))
        tt = np.arange(dur) / dur
        shape = np.where(
            tt < r,
            np.exp(-((r - tt) / (0.35 * r + 1e-9)) * 1.2),
            np.exp(-((tt - r) / (0.35 * (1 - r) + 1e-9)) * 1.2),
        )
        seg = out[t : t + dur]
        seg += peak * shape[: seg.size]
        t += dur + int(rng.integers(90, 600))
    return out


def simulate(
    seed: int, n_sites: int = 40, minutes: int = 2 * 1440, noise_cm: float = 0.3
) -> StormRun:
    rng = np.random.default_rng(seed)
    t0 = 1_720_000_000.0 + 86_400.0 * (seed % 100)
    regional = _hyetograph(rng, minutes)  # mm/h
    local = np.clip(regional[:, None] * rng.lognormal(0.0, 0.25, (1, n_sites)), 0, None)
    local *= np.clip(1 + 0.15 * rng.standard_normal((minutes, n_sites)), 0, None)
    sites = Sites(
        drainage_mm_h=rng.uniform(15, 45, n_sites).round(1),
        catchment_m2=rng.uniform(2_000, 12_000, n_sites).round(),
        basin_m2=rng.uniform(300, 1_500, n_sites).round(),
    )
    runoff = rng.uniform(0.55, 0.95, n_sites)
    lag_s = rng.uniform(4, 25, n_sites) * 60.0
    blockage = np.where(rng.random(n_sites) < 0.3, rng.uniform(0.1, 0.6, n_sites), 0.0)
    spread = rng.uniform(0.15, 0.5, n_sites)
    cap = sites.drainage_mm_h * MM_H_TO_M_S * sites.catchment_m2 * (1 - blockage)
    routed = np.zeros(n_sites)
    storage = np.zeros(n_sites)
    depth = np.zeros((minutes, n_sites))
    a = 1.0 - np.exp(-60.0 / lag_s)
    for m in range(minutes):
        inflow = runoff * local[m] * MM_H_TO_M_S * sites.catchment_m2
        routed += a * (inflow - routed)
        v = storage / sites.basin_m2
        h = 0.5 * spread * (np.sqrt(1 + 4 * v / spread) - 1)
        drain = cap * (1 - np.exp(-h / 0.04))
        out = np.minimum(np.maximum(cap - routed, 0.0), drain) + 0.6e-6 * sites.basin_m2 * (h > 0)
        storage = np.maximum(storage + (np.maximum(routed - cap, 0.0) - out) * 60.0, 0.0)
        v = storage / sites.basin_m2
        depth[m] = 100.0 * 0.5 * spread * (np.sqrt(1 + 4 * v / spread) - 1)
    obs = np.maximum(depth + rng.normal(0, noise_cm, depth.shape) * (depth > 0.2), 0.0)
    obs[rng.random(depth.shape) < 0.02] = np.nan
    rain_mm = np.round(local / 60.0 / 0.2) * 0.2  # 0.2 mm tipping bucket per minute
    ts = t0 + 60.0 * np.arange(minutes)
    return StormRun(t0, ts, rain_mm, obs, depth, sites)


def dataset(
    run: StormRun, every_min: int = 5, keep_dry: float = 0.05, seed: int = 0, start_min: int = 60
) -> dict[str, np.ndarray]:
    """Stream a run through ``flood_state`` and sample (X, future depth) pairs.

    Features at minute m use readings up to m only; targets are the *true* depths at
    m + horizon (for recorded runs, the observed depths; rows with a missing target or a
    missing reading now are dropped). Dry samples are thinned.
    """
    rng = np.random.default_rng(seed)
    T, n = run.depth_obs.shape
    states = flood_state.FloodState.initial_arrays(n)
    idx = np.arange(n)
    xs, ys, site_rows, times = [], [], [], []
    hmax = max(HORIZONS_MIN)
    for m in range(T - hmax):
        ts = np.full(n, run.ts[m])
        states, _ = flood_state.update_rain_batch(
            states, idx, ts, run.rain_mm[m], np.full(n, np.nan)
        )
        states, _ = flood_state.update_depth_batch(states, idx, ts, run.depth_obs[m])
        if m % every_min or m < start_min:
            continue
        X = flood_state.features(states, run.sites.drainage_mm_h, run.ts[m])
        active = (X[:, flood_state.FEATURES.index("rain_60_mm")] > 0) | (X[:, 0] > 0.5)
        keep = active | (rng.random(n) < keep_dry)
        if not keep.any():
            continue
        Y = np.column_stack([run.depth_true[m + h] for h in HORIZONS_MIN])
        keep &= np.isfinite(Y).all(axis=1) & np.isfinite(run.depth_obs[m])
        if not keep.any():
            continue
        xs.append(X[keep])
        ys.append(Y[keep])
        site_rows.append(idx[keep])
        times.append(np.full(int(keep.sum()), run.ts[m]))
    if not xs:
        nf = len(flood_state.FEATURES)
        return {
            "X": np.zeros((0, nf)),
            "Y": np.zeros((0, len(HORIZONS_MIN))),
            "site": np.zeros(0, np.int64),
            "ts": np.zeros(0),
        }
    return {
        "X": np.vstack(xs),
        "Y": np.vstack(ys),
        "site": np.concatenate(site_rows),
        "ts": np.concatenate(times),
    }
