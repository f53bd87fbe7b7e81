"""Bike overflow forecaster: occupancy at +30 min and P(bikes > capacity), per site.

State per metro-exit site (fixed size): the last count and capacity, an EW slope
(bikes/min, τ = 15 min), six 5-minute bins of past occupancy (for the change over the
last 30 min), 48 seasonal bins (hour of day × weekday/weekend) of the mean 30-minute
change, six bins of the forecasts made (to learn its own error online), and the EW
absolute error of those forecasts (the spread). Forecast:
``q50 = bikes + w·seasonal_change + (1 − w)·slope·30`` with ``w`` growing as the bin
learns; ``P(exceed) = 1 − Φ((capacity − q50) / σ)``, σ from the learned error.
Scored before learning; NaN counts leave the state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from models.state import Arrays, StepState, as_float, run_rounds

HORIZON_MIN = 30
BIN_S = 300.0
N_RING = 6
N_SEASON = 48
SLOPE_TAU_S = 900.0


@dataclass(frozen=True)
class BikeParams:
    alpha_season: float = 0.1
    alpha_err: float = 0.05
    min_sigma: float = 2.0
    season_full_weight_n: float = 10.0


@dataclass(frozen=True)
class _BikeCore(StepState):
    n: float = 0.0
    bikes: float = float("nan")
    t_last: float = float("nan")
    capacity: float = float("nan")
    slope: float = 0.0
    t_bin: float = float("nan")
    err: float = 0.0
    err_n: float = 0.0


_OCC = [f"o{i}" for i in range(N_RING)]
_FC = [f"f{i}" for i in range(N_RING)]
_SD = [f"sd{i}" for i in range(N_SEASON)]
_SN = [f"sn{i}" for i in range(N_SEASON)]
BikeState: type[_BikeCore] = make_dataclass(
    "BikeState",
    [(k, float, field(default=float("nan"))) for k in _OCC + _FC]
    + [(k, float, field(default=0.0)) for k in _SD + _SN],
    bases=(_BikeCore,),
    frozen=True,
)


def _season_bin(ts: np.ndarray) -> np.ndarray:
    days = np.floor(ts / 86400.0)
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    hour = np.floor(np.mod(ts, 86400.0) / 3600.0).astype(np.int64)
    return np.clip(hour + 24 * (weekday >= 5), 0, N_SEASON - 1)


def _kernel(
    rows: Arrays, inp: dict[str, np.ndarray], p: Any
) -> tuple[Arrays, dict[str, np.ndarray]]:
    ts, x, cap = inp["ts"].astype(float), inp["bikes"].astype(float), inp["capacity"].astype(float)
    ok = np.isfinite(ts) & np.isfinite(x) & ~(ts <= rows["t_last"])
    x = np.where(ok, np.maximum(x, 0.0), 0.0)
    cap = np.where(
        np.isfinite(cap) & (cap > 0),
        cap,
        np.where(np.isfinite(rows["capacity"]), rows["capacity"], 1.0),
    )
    ar = np.arange(x.size)
    # shift the rings so slot 0 is the 5-minute bin holding ts
    start = np.floor(np.where(ok, ts, 0.0) / BIN_S) * BIN_S
    k = np.where(
        np.isfinite(rows["t_bin"]), np.floor((start - np.nan_to_num(rows["t_bin"])) / BIN_S), N_RING
    )
    k = np.where(ok, np.clip(k, 0, N_RING), 0).astype(np.int64)
    idx = np.arange(N_RING)[None, :] - k[:, None]
    occ = np.column_stack([rows[c] for c in _OCC])
    fc = np.column_stack([rows[c] for c in _FC])
    occ = np.where(idx >= 0, np.take_along_axis(occ, np.clip(idx, 0, N_RING - 1), 1), np.nan)
    fc = np.where(idx >= 0, np.take_along_axis(fc, np.clip(idx, 0, N_RING - 1), 1), np.nan)
    # learn from the past first: error of the forecast made 30 min ago, change over 30 min
    past_fc = fc[:, N_RING - 1]
    past_occ = occ[:, N_RING - 1]
    have_fc = ok & np.isfinite(past_fc)
    a_e = np.where(rows["err_n"] < 1.0 / p.alpha_err, 1.0 / (rows["err_n"] + 1.0), p.alpha_err)
    err = np.where(have_fc, rows["err"] + a_e * (np.abs(x - past_fc) - rows["err"]), rows["err"])
    err_n = rows["err_n"] + have_fc
    b = _season_bin(np.where(ok, ts, 0.0) - HORIZON_MIN * 60.0)  # bin when the change began
    sd = np.column_stack([rows[c] for c in _SD])
    sn = np.column_stack([rows[c] for c in _SN])
    have_chg = ok & np.isfinite(past_occ)
    cnt = sn[ar, b]
    a_s = np.where(cnt < 1.0 / p.alpha_season, 1.0 / (cnt + 1.0), p.alpha_season)
    upd = sd[ar, b] + a_s * ((x - np.nan_to_num(past_occ)) - sd[ar, b])
    sd[ar, b] = np.where(have_chg, upd, sd[ar, b])
    sn[ar, b] = np.where(have_chg, cnt + 1.0, cnt)
    # slope
    first = ~np.isfinite(rows["bikes"])
    dt = np.where(first, 60.0, np.maximum(ts - np.nan_to_num(rows["t_last"]), 1.0))
    inst = np.where(first, 0.0, (x - np.nan_to_num(rows["bikes"])) / (dt / 60.0))
    slope = rows["slope"] + (1.0 - np.exp(-dt / SLOPE_TAU_S)) * (inst - rows["slope"])
    # forecast for now + 30 min
    bn = _season_bin(np.where(ok, ts, 0.0))
    w = np.minimum(sn[ar, bn] / p.season_full_weight_n, 1.0)
    q50 = np.clip(x + w * sd[ar, bn] + (1.0 - w) * slope * HORIZON_MIN, 0.0, None)
    sigma = np.maximum(1.2533 * err, p.min_sigma)  # mean |e| → σ of a normal
    p_exceed = 1.0 - ndtr((cap - q50) / sigma)
    occ[:, 0] = x
    fc[:, 0] = q50
    new = dict(rows)
    new.update({"n": rows["n"] + 1, "bikes": x, "t_last": ts, "capacity": cap, "slope": slope})
    new.update({"t_bin": np.where(k > 0, start, rows["t_bin"]), "err": err, "err_n": err_n})
    for j, c in enumerate(_OCC):
        new[c] = occ[:, j]
    for j, c in enumerate(_FC):
        new[c] = fc[:, j]
    for j in range(N_SEASON):
        new[_SD[j]] = sd[:, j]
        new[_SN[j]] = sn[:, j]
    out_rows = {c: np.where(ok, new[c], rows[c]) for c in rows}
    out = {
        "q10": np.where(ok, np.maximum(q50 - 1.2816 * sigma, 0.0), np.nan),
        "q50": np.where(ok, q50, np.nan),
        "q90": np.where(ok, q50 + 1.2816 * sigma, np.nan),
        "p_exceed": np.where(ok, p_exceed, 0.0),
        "occupancy": np.where(ok, x / cap, np.nan),
    }
    return out_rows, out


@dataclass(frozen=True)
class BikeForecast:
    q10: float
    q50: float
    q90: float
    p_exceed: float
    occupancy: float


def step(
    state: Any, reading: tuple[float, float, float], params: BikeParams
) -> tuple[Any, BikeForecast]:
    """One reading ``(ts, bikes, capacity)``; returns the +30 min forecast."""
    ts, bikes, cap = reading
    rows, out = _kernel(
        BikeState.stack([state]),
        {"ts": as_float([ts]), "bikes": as_float([bikes]), "capacity": as_float([cap])},
        params,
    )
    return BikeState.unstack(rows)[0], BikeForecast(
        *(float(out[k][0]) for k in ("q10", "q50", "q90", "p_exceed", "occupancy"))
    )


def step_batch(
    states: Arrays,
    site_index: np.ndarray,
    ts: np.ndarray,
    bikes: np.ndarray,
    capacity: np.ndarray,
    params: BikeParams,
) -> tuple[Arrays, dict[str, np.ndarray]]:
    """Micro-batch API: returns states and ``{"q10","q50","q90","p_exceed","occupancy"}``."""
    inp = {"ts": as_float(ts), "bikes": as_float(bikes), "capacity": as_float(capacity)}
    return run_rounds(_kernel, states, site_index, inp, params)
