"""Alert hygiene: when a site's signal becomes an alert, and when it stops being one.

A pure step function per incident (STYLE.md), vectorised over a batch of sites:

* **forecast** (→ ticket ``pre_alert``): P(exceed within the horizon) ≥ ``p_on`` for
  ``min_duration_s`` while nothing is observed;
* **observed** (→ ``open`` / escalate): the measured value ≥ ``threshold`` (QC not
  failed) for ``min_duration_s``;
* **recede** (→ ``retracted``): a forecast incident whose probability stayed below
  ``p_off`` for ``clear_duration_s`` without ever being observed;
* **clear** (→ ``auto_resolved``): an observed incident whose value stayed below
  ``threshold - hysteresis`` for ``clear_duration_s``.

Between ``p_off`` and ``p_on`` (and between the clear level and the threshold) nothing
changes: that band is the hysteresis. Flap suppression: an incident that re-opened
``flap_limit`` times within ``flap_window_s`` needs ``flap_factor`` × the duration to
fire again. Times are event times (epoch seconds); nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.state import Arrays, StepState

IDLE, FORECAST, OBSERVED = 0.0, 1.0, 2.0
PHASE_NAMES = {IDLE: "idle", FORECAST: "forecast", OBSERVED: "observed"}

# Decision codes aligned with the readings of a batch.
NONE, EMIT_FORECAST, EMIT_OBSERVED, EMIT_RECEDE, EMIT_CLEAR, EMIT_ESCALATE = range(6)
DECISION_KIND = {
    EMIT_FORECAST: "forecast",
    EMIT_OBSERVED: "observed",
    EMIT_RECEDE: "recede",
    EMIT_CLEAR: "clear",
    EMIT_ESCALATE: "observed",
}


@dataclass(frozen=True)
class HygieneParams:
    threshold: float = 15.0  # observed level that makes an incident (cm for water)
    escalate_at: float = 30.0  # observed level that raises severity
    hysteresis: float = 3.0
    p_on: float = 0.6
    p_off: float = 0.3
    min_duration_s: float = 120.0
    clear_duration_s: float = 600.0
    flap_window_s: float = 3600.0
    flap_limit: float = 3.0
    flap_factor: float = 3.0


@dataclass(frozen=True)
class HygieneState(StepState):
    phase: float = IDLE
    on_since: float = float("nan")  # forecast condition true since
    obs_since: float = float("nan")  # observed condition true since
    off_since: float = float("nan")  # clearing condition true since
    escalated: float = 0.0
    opened: float = 0.0  # incidents opened in the current flap window
    window_start: float = float("nan")
    last_ts: float = float("nan")


def _since(cond: np.ndarray, since: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return np.where(cond, np.where(np.isfinite(since), since, ts), np.nan)


def step_batch(
    states: Arrays,
    device_index: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
    p_exceed: np.ndarray,
    usable: np.ndarray,
    params: HygieneParams,
) -> tuple[Arrays, np.ndarray]:
    """Advance each site's incident state with its readings, in order.

    ``value`` is the observed level, ``p_exceed`` the forecast probability of crossing
    ``threshold`` within the horizon, ``usable`` False for readings QC failed or
    missing (they neither open nor clear anything). Returns the new states and one
    decision code per reading.
    """
    st = {k: v.copy() for k, v in states.items()}
    decisions = np.full(ts.shape[0], NONE, dtype=np.int64)
    # readings of one device must be applied in order: loop over rounds where every
    # device appears at most once (a batch rarely has more than a few per device).
    order = np.lexsort((ts, device_index))
    idx_sorted = device_index[order]
    rank = np.zeros(order.size, dtype=np.int64)
    if order.size:
        starts = np.r_[True, idx_sorted[1:] != idx_sorted[:-1]]
        group_start = np.maximum.accumulate(np.where(starts, np.arange(order.size), 0))
        rank = np.arange(order.size) - group_start
    for r in range(int(rank.max()) + 1 if rank.size else 0):
        sel = order[rank == r]
        rows = device_index[sel]
        decisions[sel] = _round(st, rows, ts[sel], value[sel], p_exceed[sel], usable[sel], params)
    return st, decisions


def _round(
    st: Arrays,
    rows: np.ndarray,
    ts: np.ndarray,
    value: np.ndarray,
    p: np.ndarray,
    usable: np.ndarray,
    prm: HygieneParams,
) -> np.ndarray:
    phase = st["phase"][rows]
    # flap window bookkeeping
    wstart = st["window_start"][rows]
    expired = ~np.isfinite(wstart) | (ts - wstart > prm.flap_window_s)
    opened = np.where(expired, 0.0, st["opened"][rows])
    wstart = np.where(expired, ts, wstart)
    factor = np.where(opened >= prm.flap_limit, prm.flap_factor, 1.0)
    need = prm.min_duration_s * factor

    v = np.where(usable, value, np.nan)
    pp = np.where(usable, p, np.nan)
    observed = v >= prm.threshold
    below = v < prm.threshold - prm.hysteresis
    fc_on = pp >= prm.p_on
    fc_off = pp < prm.p_off

    obs_since = _since(observed, st["obs_since"][rows], ts)
    on_since = _since(fc_on, st["on_since"][rows], ts)
    clearing = np.where(phase == OBSERVED, below, fc_off & ~observed)
    # an unusable reading keeps the clearing clock where it was
    off_prev = st["off_since"][rows]
    off_since = np.where(usable, _since(clearing, off_prev, ts), off_prev)

    decision = np.full(rows.size, NONE, dtype=np.int64)
    fire_obs = (phase != OBSERVED) & observed & (ts - obs_since >= need)
    fire_fc = (phase == IDLE) & ~observed & fc_on & (ts - on_since >= need)
    fire_clear = (
        (phase == OBSERVED) & np.isfinite(off_since) & (ts - off_since >= prm.clear_duration_s)
    )
    fire_recede = (
        (phase == FORECAST) & np.isfinite(off_since) & (ts - off_since >= prm.clear_duration_s)
    )
    escalate = (phase == OBSERVED) & (st["escalated"][rows] < 1) & (v >= prm.escalate_at)

    decision = np.where(fire_fc, EMIT_FORECAST, decision)
    decision = np.where(fire_obs, EMIT_OBSERVED, decision)
    decision = np.where(fire_clear, EMIT_CLEAR, decision)
    decision = np.where(fire_recede, EMIT_RECEDE, decision)
    decision = np.where(escalate & (decision == NONE), EMIT_ESCALATE, decision)

    new_phase = phase.copy()
    new_phase = np.where(fire_fc, FORECAST, new_phase)
    new_phase = np.where(fire_obs, OBSERVED, new_phase)
    new_phase = np.where(fire_clear | fire_recede, IDLE, new_phase)
    opened = opened + (fire_fc & (phase == IDLE)) + (fire_obs & (phase == IDLE))
    reset = fire_clear | fire_recede | fire_obs | fire_fc

    st["phase"][rows] = new_phase
    st["obs_since"][rows] = obs_since
    st["on_since"][rows] = on_since
    st["off_since"][rows] = np.where(reset, np.nan, off_since)
    st["escalated"][rows] = np.where(
        fire_clear | fire_recede,
        0.0,
        np.where(escalate | (fire_obs & (v >= prm.escalate_at)), 1.0, st["escalated"][rows]),
    )
    st["opened"][rows] = opened
    st["window_start"][rows] = wstart
    st["last_ts"][rows] = ts
    return decision
