"""Training: fit the flood forecaster (and the bike/camera baselines) from histories.

Pure functions over arrays; the CLI (``models.cli``) reads files and saves artefacts
through ``models.registry``. Flood training data come from ``models.storms`` (seeded,
always available) and, when given, simulator runs read by ``models.history``.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from models import flood_state
from models.flood_forecast import (
    HORIZONS_MIN,
    QUANTILES,
    ReservoirForecaster,
    Sites,
    TrainedFloodForecaster,
)

FLOOD_DESIGN: tuple[str, ...] = (
    *flood_state.FEATURES,
    *(f"reservoir_decay_{h}" for h in HORIZONS_MIN),
    *(f"reservoir_persist_{h}" for h in HORIZONS_MIN),
)


def fit_flood(
    X: np.ndarray,
    sites: Sites,
    Y: np.ndarray,
    seed: int = 0,
    max_iter: int = 150,
    version: str = "hgb-1",
    progress: object = None,
) -> TrainedFloodForecaster:
    """Quantile HGB per (horizon, quantile) on the change of depth, then a split-conformal
    widening of (q10, q90) on a held-out fifth so the band covers ~80 % (CQR)."""
    Z = TrainedFloodForecaster.design(X, sites, ReservoirForecaster())
    depth = X[:, flood_state.FEATURES.index("depth_cm")]
    rng = np.random.default_rng(seed)
    cal = np.asarray(rng.random(X.shape[0]) < 0.2, dtype=bool)
    n_cal = int(cal.sum())
    models = {}
    widen: dict[int, float] = {}
    for k, h in enumerate(HORIZONS_MIN):
        target = Y[:, k] - depth
        for q in QUANTILES:
            m = HistGradientBoostingRegressor(
                loss="quantile",
                quantile=q,
                max_iter=max_iter,
                learning_rate=0.08,
                max_leaf_nodes=31,
                min_samples_leaf=40,
                l2_regularization=1.0,
                random_state=seed,
            )
            m.fit(Z[~cal], target[~cal])
            models[(h, q)] = m
            if callable(progress):
                progress()
        if n_cal > 20:
            lo = models[(h, 0.1)].predict(Z[cal])
            hi = models[(h, 0.9)].predict(Z[cal])
            score = np.maximum(lo - target[cal], target[cal] - hi)
            level = min(1.0, 0.8 * (1 + 1 / n_cal))
            widen[h] = float(max(np.quantile(score, level), 0.0))
    return TrainedFloodForecaster(models, version, widen)


def pool(
    datasets: list[dict[str, np.ndarray]], runs_sites: list[Sites]
) -> tuple[np.ndarray, Sites, np.ndarray]:
    """Concatenate datasets of several runs (each with its own sites)."""
    X = np.vstack([d["X"] for d in datasets])
    Y = np.vstack([d["Y"] for d in datasets])
    parts = [s.take(d["site"]) for d, s in zip(datasets, runs_sites, strict=True)]
    sites = Sites(
        np.concatenate([p.drainage_mm_h for p in parts]),
        np.concatenate([p.catchment_m2 for p in parts]),
        np.concatenate([p.basin_m2 for p in parts]),
    )
    return X, sites, Y
