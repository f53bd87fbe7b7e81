"""Flood forecaster: depth at +15/+30/+60 min with q10/q50/q90 and P(depth > threshold).

Two forecasters share one interface, ``predict(X, sites) -> FloodForecast``:

* ``ReservoirForecaster`` — physically based, needs no training: each site's pond is
  a reservoir fed by the catchment's lagged runoff (``routed_mm_h`` of the streaming
  state) and emptied by the drainage capacity (``drainage_mm_h`` over the catchment);
  the current observed depth is the initial storage. Three rain scenarios give the
  quantiles: rain stops now (q10), decays with a 20-minute half-life (q50), persists
  at the larger of the current intensity and the last 15 minutes' rate (q90).
* ``TrainedFloodForecaster`` — scikit-learn quantile gradient boosting per horizon and
  quantile, predicting the change of depth from ``FEATURES`` plus the reservoir's q50
  at each horizon (``models.train.fit_flood``); saved and loaded by ``models.registry``.

Exceedance probabilities come from a two-piece normal through (q10, q50, q90).
``batch_forecast(states, sites, now, model)`` is the one call a stream job needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr

from models import flood_state
from models.state import Arrays, as_float

HORIZONS_MIN: tuple[int, ...] = (15, 30, 60)
THRESHOLDS_CM: tuple[float, ...] = (15.0, 7.6)
QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
Z90 = 1.2815515655446004
MM_H_TO_M_S = 1.0 / 1000.0 / 3600.0
SPREAD_M = 0.3
TAPER_M = 0.03
LOSS_MM_H = 2.0
MIN_SPREAD_CM = 0.3


@dataclass(frozen=True)
class Sites:
    """Physical attributes per site (registry ``attrs``), arrays of shape (n,)."""

    drainage_mm_h: np.ndarray
    catchment_m2: np.ndarray
    basin_m2: np.ndarray

    @classmethod
    def from_attrs(cls, attrs: list[dict[str, Any]]) -> Sites:
        def col(name: str, default: float) -> np.ndarray:
            return np.array([float(a.get(name, default)) for a in attrs], dtype=float)

        return cls(col("drainage_mm_h", 30.0), col("catchment_m2", 5_000.0), col("basin_m2", 600.0))

    @classmethod
    def default(cls, n: int) -> Sites:
        return cls(np.full(n, 30.0), np.full(n, 5_000.0), np.full(n, 600.0))

    def take(self, idx: np.ndarray) -> Sites:
        return Sites(self.drainage_mm_h[idx], self.catchment_m2[idx], self.basin_m2[idx])


@dataclass(frozen=True)
class FloodForecast:
    """Arrays of shape (n, len(HORIZONS_MIN)); ``p_exceed[thr]`` likewise."""

    horizons_min: tuple[int, ...]
    q10: np.ndarray
    q50: np.ndarray
    q90: np.ndarray
    p_exceed: dict[float, np.ndarray]
    model_version: str

    def row(self, i: int) -> list[dict[str, Any]]:
        """Site ``i`` as dicts shaped like ``gridwatch.contracts.Forecast``."""
        return [
            {
                "horizon_min": h,
                "q10": float(self.q10[i, k]),
                "q50": float(self.q50[i, k]),
                "q90": float(self.q90[i, k]),
                "p_exceed": {f"{t:.1f}": float(p[i, k]) for t, p in self.p_exceed.items()},
            }
            for k, h in enumerate(self.horizons_min)
        ]


def exceedance(q10: np.ndarray, q50: np.ndarray, q90: np.ndarray, threshold: float) -> np.ndarray:
    """P(X > threshold) under a two-piece normal with the given quantiles."""
    lo = np.maximum((q50 - q10) / Z90, MIN_SPREAD_CM)
    hi = np.maximum((q90 - q50) / Z90, MIN_SPREAD_CM)
    d = threshold - q50
    return np.clip(1.0 - ndtr(d / np.where(d < 0, lo, hi)), 0.0, 1.0)


def _depth_to_storage(h_m: np.ndarray, basin: np.ndarray) -> np.ndarray:
    return basin * h_m * (1.0 + h_m / SPREAD_M)


def _storage_to_depth(s: np.ndarray, basin: np.ndarray) -> np.ndarray:
    v = s / basin
    return 0.5 * SPREAD_M * (np.sqrt(1.0 + 4.0 * v / SPREAD_M) - 1.0)


def reservoir_paths(
    depth_cm: np.ndarray,
    routed_mm_h: np.ndarray,
    intensity_mm_h: np.ndarray,
    sites: Sites,
    half_life_min: np.ndarray | float,
    horizons: tuple[int, ...] = HORIZONS_MIN,
    dt_s: float = 60.0,
) -> np.ndarray:
    """Integrate the reservoir forward; returns depth (n, len(horizons)) in cm.

    Dry sites (no water, no runoff on its way, no rain) stay dry: only the others are
    integrated, which is most of the cost saved on an ordinary day."""
    out = np.zeros((depth_cm.size, len(horizons)))
    wet = (depth_cm > 0) | (routed_mm_h > 0) | (intensity_mm_h > 0)
    if not wet.any():
        return out
    if not wet.all():
        half = np.broadcast_to(np.asarray(half_life_min, float), depth_cm.shape)[wet]
        out[wet] = reservoir_paths(
            depth_cm[wet],
            routed_mm_h[wet],
            intensity_mm_h[wet],
            sites.take(np.flatnonzero(wet)),
            half,
            horizons,
            dt_s,
        )
        return out
    storage = _depth_to_storage(np.maximum(depth_cm, 0.0) / 100.0, sites.basin_m2)
    routed = np.maximum(routed_mm_h, 0.0).astype(float)
    cap = sites.drainage_mm_h * MM_H_TO_M_S * sites.catchment_m2
    decay = np.exp(-np.log(2.0) * dt_s / 60.0 / np.maximum(np.asarray(half_life_min, float), 1e-6))
    rain = flood_state.RUNOFF_COEFF * np.maximum(intensity_mm_h, 0.0)
    a = 1.0 - np.exp(-dt_s / flood_state.LAG_S)
    for minute in range(1, max(horizons) + 1):
        rain = rain * decay
        routed = routed + a * (rain - routed)
        inflow = routed * MM_H_TO_M_S * sites.catchment_m2
        h = _storage_to_depth(storage, sites.basin_m2)
        drain = cap * (1.0 - np.exp(-np.maximum(h, 0.0) / TAPER_M))
        spare = np.maximum(cap - inflow, 0.0)
        excess = np.maximum(inflow - cap, 0.0)
        loss = LOSS_MM_H * MM_H_TO_M_S * sites.basin_m2 * (h > 0)
        storage = np.maximum(storage + (excess - np.minimum(spare, drain) - loss) * dt_s, 0.0)
        for k, hz in enumerate(horizons):
            if hz == minute:
                out[:, k] = _storage_to_depth(storage, sites.basin_m2) * 100.0
    return out


def _col(X: np.ndarray, name: str) -> np.ndarray:
    return X[:, flood_state.FEATURES.index(name)]


class ReservoirForecaster:
    """Physically based default forecaster (no training)."""

    version = "reservoir-1"

    def __init__(self, correction_tau_min: float = 10.0):
        self.correction_tau_min = correction_tau_min

    def scenarios(self, X: np.ndarray, sites: Sites) -> dict[str, np.ndarray]:
        depth = _col(X, "depth_cm")
        routed = _col(X, "routed_mm_h")
        now_i = _col(X, "intensity_mm_h")
        rate15 = _col(X, "rain_15_mm") * 4.0
        hz = (1, *HORIZONS_MIN)
        n = depth.size
        # the three rain scenarios integrated in one vectorised pass (3n rows)
        tiled = Sites(
            *(np.tile(a, 3) for a in (sites.drainage_mm_h, sites.catchment_m2, sites.basin_m2))
        )
        paths = reservoir_paths(
            np.tile(depth, 3),
            np.tile(routed, 3),
            np.concatenate([np.zeros_like(now_i), now_i, np.maximum(now_i, rate15)]),
            tiled,
            np.repeat([1.0, 20.0, 1e9], n),
            hz,
        )
        out = {"stop": paths[:n], "decay": paths[n : 2 * n], "persist": paths[2 * n :]}
        # assimilate the observed slope: the model's rate error now fades with time τ
        tau = self.correction_tau_min
        err = _col(X, "slope_cm_min") - (out["decay"][:, 0] - depth)
        ramp = tau * (1.0 - np.exp(-np.array(HORIZONS_MIN, dtype=float) / tau))
        shift = err[:, None] * ramp[None, :]
        return {k: np.maximum(v[:, 1:] + shift, 0.0) for k, v in out.items()}

    def predict(
        self, X: np.ndarray, sites: Sites, thresholds: tuple[float, ...] = THRESHOLDS_CM
    ) -> FloodForecast:
        sc = self.scenarios(X, sites)
        depth = _col(X, "depth_cm")[:, None]
        # scenario spread plus a margin growing with the expected change (pre-fit on
        # models.storms runs so the band covers roughly 80 %)
        margin = 0.3 + 0.35 * np.abs(sc["decay"] - depth) + 0.1 * (sc["persist"] - sc["stop"])
        q10 = np.minimum(sc["stop"], sc["decay"]) - margin
        q50 = sc["decay"]
        q90 = np.maximum(sc["persist"], sc["decay"]) + margin
        q10 = np.maximum(q10, 0.0)
        return _finish(q10, q50, q90, thresholds, self.version)


def _finish(
    q10: np.ndarray, q50: np.ndarray, q90: np.ndarray, thresholds: tuple[float, ...], version: str
) -> FloodForecast:
    q10 = np.maximum(q10, 0.0)
    q50 = np.maximum(q50, q10)
    q90 = np.maximum(q90, q50)
    p = {float(t): exceedance(q10, q50, q90, float(t)) for t in thresholds}
    return FloodForecast(HORIZONS_MIN, q10, q50, q90, p, version)


class TrainedFloodForecaster:
    """Quantile gradient boosting on ``FEATURES`` + the reservoir's q50 per horizon."""

    def __init__(
        self,
        models: dict[tuple[int, float], Any],
        version: str,
        widen: dict[int, float] | None = None,
    ):
        self.models = models  # (horizon, quantile) -> fitted regressor of Δdepth
        self.version = version
        self.widen = widen or {}  # horizon -> conformal widening of (q10, q90), cm
        self.prior = ReservoirForecaster()

    @staticmethod
    def design(X: np.ndarray, sites: Sites, prior: ReservoirForecaster) -> np.ndarray:
        sc = prior.scenarios(X, sites)
        depth = _col(X, "depth_cm")[:, None]
        return np.column_stack([X, sc["decay"] - depth, sc["persist"] - depth])

    def predict(
        self, X: np.ndarray, sites: Sites, thresholds: tuple[float, ...] = THRESHOLDS_CM
    ) -> FloodForecast:
        Z = self.design(X, sites, self.prior)
        depth = _col(X, "depth_cm")
        qs = {q: np.zeros((X.shape[0], len(HORIZONS_MIN))) for q in QUANTILES}
        for k, h in enumerate(HORIZONS_MIN):
            for q in QUANTILES:
                qs[q][:, k] = depth + self.models[(h, q)].predict(Z)
        w = np.array([self.widen.get(h, 0.0) for h in HORIZONS_MIN])[None, :]
        lo = np.minimum(np.minimum(qs[0.1], qs[0.5]), qs[0.9]) - w
        hi = np.maximum(np.maximum(qs[0.1], qs[0.5]), qs[0.9]) + w
        return _finish(lo, qs[0.5], hi, thresholds, self.version)


def persistence(X: np.ndarray) -> np.ndarray:
    return np.repeat(_col(X, "depth_cm")[:, None], len(HORIZONS_MIN), axis=1)


def linear_extrapolation(X: np.ndarray) -> np.ndarray:
    d, s = _col(X, "depth_cm")[:, None], _col(X, "slope_cm_min")[:, None]
    return np.maximum(d + s * np.array(HORIZONS_MIN)[None, :], 0.0)


def batch_forecast(
    states: Arrays,
    sites: Sites,
    now: np.ndarray | float,
    model: ReservoirForecaster | TrainedFloodForecaster | None = None,
    thresholds: tuple[float, ...] = THRESHOLDS_CM,
) -> FloodForecast:
    """Forecast every site in ``states`` (``FloodState`` arrays) at time ``now``."""
    model = model or ReservoirForecaster()
    X = flood_state.features(states, sites.drainage_mm_h, as_float(now, states["r0"].size))
    return model.predict(X, sites, thresholds)


def load_forecaster(root: Path | None, strict: bool = False) -> tuple[Any, str]:
    """The trained forecaster from ``root`` if one fits this code, else the reservoir.

    Returns ``(forecaster, note)``. With ``strict`` a missing or mismatched artefact
    raises ``ArtefactError`` / ``SchemaMismatchError`` instead of falling back."""
    from models import registry
    from models.errors import ArtefactError
    from models.train import FLOOD_DESIGN

    if root is None or registry.latest(root, "flood") is None:
        if strict:
            raise ArtefactError(f"no flood artefact under {root}")
        return ReservoirForecaster(), "no trained artefact; physical default"
    try:
        model, card = registry.load(root, "flood", list(FLOOD_DESIGN))
    except ArtefactError as exc:
        if strict:
            raise
        return ReservoirForecaster(), f"artefact refused ({exc}); physical default"
    return model, f"trained {card.version}"
