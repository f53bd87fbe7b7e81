"""Online per-device anomaly detector for every feed (water, rain, bike, camera counts).

``RobustLevelDetector`` keeps a small fixed-size state per device and scores each
reading *before* learning from it:

* three residuals, each over a robust spread (EW mean absolute deviation, floored so a
  constant series never divides by zero): the value against a fast EW level, against a
  slow EW level (level shifts), and the step from the previous value against the usual
  step size (spikes and jumps); plus a "too quiet" term when the recent step size
  collapses against the long-run one (a stuck or flat-lined signal);
* the surprise ``u = log1p(max residual)`` is averaged over a short horizon and
  compared with its own long-run mean and spread, giving an anomaly *likelihood*
  ``max(0, 2Φ(z) − 1)`` in [0, 1] (the idea of Numenta's anomaly likelihood, without HTM);
* a warm-up (score 0 for the first readings) and a refractory period after a score
  reaches ``refractory_level``, so one incident raises one detection; ``alert`` is
  ``score >= threshold``;
* levels and the seasonal profile learn Huber-style: a residual beyond ``level_clip``
  (``season_clip``) spreads moves them only as far as one that size would, so an
  anomaly does not become tomorrow's baseline, while a lasting shift is still learnt.

A missing value (NaN) leaves the state unchanged and scores 0. ``step`` handles one
reading; ``step_batch`` a micro-batch over many devices (equal to a loop of ``step``).
Parameters were tuned on the NAB development categories only (``models/nab.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Any

import numpy as np
from scipy.special import ndtr

from models.state import Arrays, StepState, as_float, run_rounds


@dataclass(frozen=True)
class DetectorParams:
    alpha_fast: float = 0.05
    alpha_slow: float = 0.005
    alpha_short: float = 0.3
    alpha_long: float = 0.002
    quiet_gain: float = 0.0
    warmup: float = 60.0
    refractory: float = 150.0
    threshold: float = 0.98425  # alert when the score reaches this (NAB-tuned)
    refractory_level: float = 0.985  # a score this high starts the refractory period
    heat_gain: float = 0.3  # z-units added per recent alert (fewer repeats in noisy series)
    heat_decay: float = 0.999  # per reading
    cusum_k: float = 3.0  # allowance (in spreads) of the two-sided CUSUM on the residual
    cusum_gain: float = 0.1  # weight of the CUSUM statistic in the surprise (0 disables)
    abs_k: float = 10.0  # a residual beyond abs_k spreads scores on its own (inf disables)
    abs_floor: float = 1e-6
    rel_floor: float = 1e-3
    season_period_s: float = 86_400.0
    alpha_season: float = 0.05
    season_min_count: float = 3.0
    use_season: float = 1.0  # 0 ignores the seasonal profile, 1 takes min(raw, seasonal)
    # Huber-style learning: a residual beyond this many spreads moves the baseline only as
    # far as one this size would (0 disables), so an anomaly does not become the baseline
    level_clip: float = 3.0  # fast and slow levels, after the warm-up
    season_clip: float = 2.0  # the hour-of-period bin, once it has season_min_count readings


SEASON_BINS = 24


@dataclass(frozen=True)
class _DetectorCore(StepState):
    n: float = 0.0
    last: float = 0.0
    m_fast: float = 0.0
    d_fast: float = 0.0
    m_slow: float = 0.0
    d_slow: float = 0.0
    step_fast: float = 0.0
    step_slow: float = 0.0
    u_short: float = 0.0
    u_mean: float = 0.0
    u_var: float = 0.0
    cooldown: float = 0.0
    heat: float = 0.0
    g_pos: float = 0.0
    g_neg: float = 0.0


_SEASON_FIELDS = [
    (f"{kind}{i}", float, field(default=0.0))
    for kind in ("sm", "sd", "sc")
    for i in range(SEASON_BINS)
]
DetectorState: type[_DetectorCore] = make_dataclass(
    "DetectorState", _SEASON_FIELDS, bases=(_DetectorCore,), frozen=True
)
DetectorState.__doc__ = (
    "Per-device detector state: EW levels, spreads, surprise statistics and a "
    f"{SEASON_BINS}-bin seasonal profile (sm mean, sd spread, sc count per bin)."
)
_SM = [f"sm{i}" for i in range(SEASON_BINS)]
_SD = [f"sd{i}" for i in range(SEASON_BINS)]
_SC = [f"sc{i}" for i in range(SEASON_BINS)]


def _clip(residual: np.ndarray, limit: np.ndarray) -> np.ndarray:
    return np.clip(residual, -limit, limit)


def _kernel(
    rows: Arrays, inp: dict[str, np.ndarray], p: Any
) -> tuple[Arrays, dict[str, np.ndarray]]:
    x_raw = inp["value"].astype(float)
    ok = np.isfinite(x_raw)
    x = np.clip(np.where(ok, x_raw, 0.0), -1e12, 1e12)
    n = rows["n"]
    first = n <= 0
    last = np.where(first, x, rows["last"])
    m_fast = np.where(first, x, rows["m_fast"])
    m_slow = np.where(first, x, rows["m_slow"])
    d_fast, d_slow = rows["d_fast"], rows["d_slow"]
    step_fast, step_slow = rows["step_fast"], rows["step_slow"]
    floor = np.maximum(p.abs_floor, p.rel_floor * np.abs(m_slow))
    # score before learning
    step = np.abs(x - last)
    lim_fast = np.maximum(1.25 * d_fast, floor)
    lim_slow = np.maximum(1.25 * d_slow, floor)
    r_fast = np.abs(x - m_fast) / lim_fast
    r_slow = np.abs(x - m_slow) / lim_slow
    r_step = step / np.maximum(1.25 * step_slow, floor)
    quiet = p.quiet_gain * np.log(np.maximum(step_slow, floor) / np.maximum(step_fast, floor))
    raw = np.maximum(np.maximum(r_fast, r_slow), np.maximum(r_step, quiet))
    # seasonal profile: the reading is surprising only if the bin's profile agrees
    ts = inp["ts"].astype(float)
    has_ts = np.isfinite(ts)
    phase = np.mod(np.where(has_ts, ts, 0.0), p.season_period_s) / p.season_period_s
    b = np.minimum((phase * SEASON_BINS).astype(np.int64), SEASON_BINS - 1)
    ar = np.arange(x.size)
    sm_all = np.column_stack([rows[k] for k in _SM])
    sd_all = np.column_stack([rows[k] for k in _SD])
    sc_all = np.column_stack([rows[k] for k in _SC])
    sm, sd, sc = sm_all[ar, b], sd_all[ar, b], sc_all[ar, b]
    r_season = np.abs(x - sm) / np.maximum(1.25 * sd, floor)
    seasonal_ok = has_ts & (sc >= p.season_min_count)
    w = p.use_season
    mixed = np.power(raw, 1.0 - w) * np.power(np.minimum(raw, r_season), w)
    raw = np.where(seasonal_ok, mixed, raw)
    # change-point: CUSUM of the signed residual (seasonal when the bin is ready)
    z_res = np.where(
        seasonal_ok,
        (x - sm) / np.maximum(1.25 * sd, floor),
        (x - m_slow) / np.maximum(1.25 * d_slow, floor),
    )
    z_res = np.clip(z_res, -50.0, 50.0)
    g_pos = np.maximum(0.0, rows["g_pos"] + z_res - p.cusum_k)
    g_neg = np.maximum(0.0, rows["g_neg"] - z_res - p.cusum_k)
    raw = np.maximum(raw, p.cusum_gain * np.maximum(g_pos, g_neg))
    u = np.log1p(np.maximum(raw, 0.0))
    u_short = np.where(first, u, (1 - p.alpha_short) * rows["u_short"] + p.alpha_short * u)
    spread = np.sqrt(np.maximum(rows["u_var"], 1e-4))
    z = (u_short - rows["u_mean"]) / spread
    # 0 for an ordinary reading, → 1 as the recent surprise leaves its usual range
    lik = 2.0 * ndtr(z - p.heat_gain * rows["heat"]) - 1.0
    # a gross residual is anomalous whatever the recent surprise history says
    lik_abs = 2.0 * ndtr(np.maximum(raw - p.abs_k, 0.0) - p.heat_gain * rows["heat"]) - 1.0
    score = np.where(n >= p.warmup, np.maximum(np.maximum(lik, lik_abs), 0.0), 0.0)
    cooling = rows["cooldown"] > 0
    score = np.where(cooling, np.minimum(score, 0.5 * p.refractory_level), score)
    fired = score >= p.refractory_level
    cooldown = np.where(fired, p.refractory, np.maximum(rows["cooldown"] - 1, 0.0))
    # learn
    af, as_ = p.alpha_fast, p.alpha_slow
    clip_on = (p.level_clip > 0) & (n >= p.warmup)
    res_fast = _clip(x - m_fast, np.where(clip_on, p.level_clip * lim_fast, np.inf))
    res_slow = _clip(x - m_slow, np.where(clip_on, p.level_clip * lim_slow, np.inf))
    new = {
        "n": n + 1,
        "last": x,
        "m_fast": m_fast + af * res_fast,
        "d_fast": d_fast + af * (np.abs(res_fast) - d_fast),
        "m_slow": m_slow + as_ * res_slow,
        "d_slow": d_slow + as_ * (np.abs(res_slow) - d_slow),
        "step_fast": np.where(first, 0.0, step_fast + af * (step - step_fast)),
        "step_slow": np.where(first, 0.0, step_slow + as_ * (step - step_slow)),
        "u_short": u_short,
    }
    al = np.where(n < 1.0 / p.alpha_long, 1.0 / (n + 1.0), p.alpha_long)
    dev = u_short - rows["u_mean"]
    new["u_mean"] = rows["u_mean"] + al * dev
    new["u_var"] = (1 - al) * (rows["u_var"] + al * dev * dev)
    new["cooldown"] = cooldown
    new["heat"] = rows["heat"] * p.heat_decay + fired
    new["g_pos"] = np.where(fired, 0.0, g_pos)
    new["g_neg"] = np.where(fired, 0.0, g_neg)
    a_s = np.where(sc < 1.0 / p.alpha_season, 1.0 / (sc + 1.0), p.alpha_season)
    learn_season = ok & has_ts
    season_on = (p.season_clip > 0) & (sc >= p.season_min_count)
    res_s = _clip(x - sm, np.where(season_on, p.season_clip * np.maximum(1.25 * sd, floor), np.inf))
    sm_new = sm + a_s * res_s
    sd_new = np.where(sc > 0, sd + a_s * (np.abs(res_s) - sd), 0.0)
    li, bi = ar[learn_season], b[learn_season]
    sm_all[li, bi] = sm_new[learn_season]
    sd_all[li, bi] = sd_new[learn_season]
    sc_all[li, bi] = np.minimum(sc + 1.0, 1e6)[learn_season]
    for j in range(SEASON_BINS):
        new[_SM[j]], new[_SD[j]], new[_SC[j]] = sm_all[:, j], sd_all[:, j], sc_all[:, j]
    out_rows = {k: np.where(ok, v, rows[k]) for k, v in new.items()}
    score = np.where(ok, np.clip(score, 0.0, 1.0), 0.0)
    alert = ok & (score >= p.threshold)
    return out_rows, {"score": score, "alert": alert, "raw": np.where(ok, raw, 0.0)}


@dataclass(frozen=True)
class DetectorOutput:
    score: float
    alert: bool
    raw: float


def step(
    state: Any, reading: tuple[float, float], params: DetectorParams
) -> tuple[Any, DetectorOutput]:
    """One reading ``(ts_epoch_s, value)`` of one device; ``state`` is a ``DetectorState``."""
    ts, value = reading
    rows, out = _kernel(
        DetectorState.stack([state]), {"value": as_float([value]), "ts": as_float([ts])}, params
    )
    return DetectorState.unstack(rows)[0], DetectorOutput(
        float(out["score"][0]), bool(out["alert"][0]), float(out["raw"][0])
    )


def step_batch(
    states: Arrays,
    device_index: np.ndarray,
    ts: np.ndarray,
    values: np.ndarray,
    params: DetectorParams,
) -> tuple[Arrays, dict[str, np.ndarray]]:
    """Score a micro-batch; ``states`` holds one row per device
    (``DetectorState.initial_arrays(n)`` or ``DetectorState.stack``). Returns new states and
    ``{"score", "alert", "raw"}`` aligned with the readings."""
    return run_rounds(_kernel, states, device_index, {"value": values, "ts": ts}, params)


def score_series(values: np.ndarray, params: Any, ts: np.ndarray | None = None) -> np.ndarray:
    """Scores of whole series run side by side: ``values`` (T, D) → scores (T, D).

    Column d is one device; NaN marks missing readings; ``ts`` (T, D) epoch seconds.
    ``params`` fields may be arrays of shape (D,) (to tune many settings in one pass)."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    t_len, d = values.shape
    rows = DetectorState.initial_arrays(d)
    out = np.zeros((t_len, d))
    for t in range(t_len):
        tt = np.full(d, np.nan) if ts is None else ts[t]
        rows, o = _kernel(rows, {"value": values[t], "ts": tt}, params)
        out[t] = o["score"]
    return out
