"""QARTOD-style quality control, per reading, streaming and vectorised.

Tests (each gives a QARTOD flag 1 pass / 3 suspect / 4 fail, 2 not evaluated):

* gross range   — outside the sensor's physical range → 4; outside the plausible range → 3
* climatology   — outside the month's expected range (12 monthly bounds) → 3
* spike         — distance of the newest value from the mean of the two before it
                  (evaluated on the newest value, so no look-ahead) → 3 / 4
* rate of change — |Δvalue| / Δt above a limit per minute → 3
* flat line     — the value has not moved for N readings while away from the dry
                  baseline (a stuck sensor; a dry flood sensor at 0 is normal) → 3 / 4
* neighbour consistency — see ``neighbour_consistency`` (cross-device, per batch)

The aggregate flag is the worst of the tests; a missing (NaN) value gives 9. ``bits``
says which tests fired (``TEST_BITS``) so a fault becomes a maintenance signal rather
than a flood signal. State per device is ``QcState``; ``step`` is one reading,
``step_batch`` a micro-batch (equal to a loop of ``step``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.state import Arrays, StepState, as_float, run_rounds

PASS, NOT_EVALUATED, SUSPECT, FAIL, MISSING = 1, 2, 3, 4, 9

TEST_BITS: dict[str, int] = {
    "gross_range": 1,
    "climatology": 2,
    "spike": 4,
    "rate_of_change": 8,
    "flat_line": 16,
    "neighbour": 32,
    "missing": 64,
}


@dataclass(frozen=True)
class QcParams:
    """Thresholds of one feed kind (defaults: waterlogging depth in cm, 1-min cadence)."""

    fail_min: float = -5.0
    fail_max: float = 300.0
    suspect_min: float = -1.0
    suspect_max: float = 150.0
    # 12 (low, high) monthly bounds, January first; None disables the test.
    climatology: tuple[tuple[float, float], ...] | None = None
    spike_suspect: float = 20.0
    spike_fail: float = 60.0
    roc_per_min: float = 15.0
    flat_eps: float = 0.05
    flat_ignore_below: float = 1.0
    flat_suspect_n: float = 30.0
    flat_fail_n: float = 120.0


PARAMS_BY_KIND: dict[str, QcParams] = {
    "water": QcParams(),
    "rain": QcParams(
        fail_min=-0.01,
        fail_max=300.0,
        suspect_min=0.0,
        suspect_max=120.0,
        spike_suspect=1e9,
        spike_fail=1e9,
        roc_per_min=1e9,
        flat_ignore_below=0.01,
        flat_suspect_n=120.0,
        flat_fail_n=360.0,
    ),
    "bike": QcParams(
        fail_min=0.0,
        fail_max=2000.0,
        suspect_min=0.0,
        suspect_max=600.0,
        spike_suspect=80.0,
        spike_fail=300.0,
        roc_per_min=60.0,
        flat_ignore_below=-1.0,
        flat_suspect_n=360.0,
        flat_fail_n=1440.0,
    ),
    "camera": QcParams(
        fail_min=0.0,
        fail_max=5000.0,
        suspect_min=0.0,
        suspect_max=2000.0,
        spike_suspect=1e9,
        spike_fail=1e9,
        roc_per_min=1e9,
        flat_ignore_below=0.5,
        flat_suspect_n=240.0,
        flat_fail_n=1440.0,
    ),
}


@dataclass(frozen=True)
class QcState(StepState):
    p1: float = float("nan")  # last valid value
    p2: float = float("nan")  # the one before
    t1: float = float("nan")  # time of p1 (epoch s)
    flat_n: float = 0.0  # readings the value has not moved


@dataclass(frozen=True)
class QcResult:
    flag: int
    bits: int
    tests: dict[str, int] = field(default_factory=dict)


def _month(ts: np.ndarray) -> np.ndarray:
    finite = np.isfinite(ts)
    months = np.zeros(ts.shape, dtype=np.int64)
    if finite.any():
        m = ts[finite].astype("int64").astype("datetime64[s]").astype("datetime64[M]")
        months[finite] = m.astype(np.int64) % 12
    return months


def _kernel(
    rows: Arrays, inp: dict[str, np.ndarray], p: QcParams
) -> tuple[Arrays, dict[str, np.ndarray]]:
    x = inp["value"].astype(float)
    ts = inp["ts"].astype(float)
    p1, p2, t1, flat_n = rows["p1"], rows["p2"], rows["t1"], rows["flat_n"]
    missing = ~np.isfinite(x)
    xv = np.clip(np.where(missing, 0.0, x), -1e12, 1e12)  # absurd values still fail gross range
    n = x.shape[0]
    flags = {}
    # gross range
    g = np.full(n, PASS)
    g = np.where((xv < p.suspect_min) | (xv > p.suspect_max), SUSPECT, g)
    g = np.where((xv < p.fail_min) | (xv > p.fail_max), FAIL, g)
    flags["gross_range"] = g
    # climatology
    if p.climatology is not None:
        bounds = np.asarray(p.climatology, dtype=float)
        m = _month(ts)
        c = np.where((xv < bounds[m, 0]) | (xv > bounds[m, 1]), SUSPECT, PASS)
    else:
        c = np.full(n, NOT_EVALUATED)
    flags["climatology"] = c
    # spike: newest value against the mean of the previous two
    have2 = np.isfinite(p1) & np.isfinite(p2)
    dev = np.abs(xv - 0.5 * (np.nan_to_num(p1) + np.nan_to_num(p2)))
    s = np.where(dev > p.spike_suspect, SUSPECT, PASS)
    s = np.where(dev > p.spike_fail, FAIL, s)
    flags["spike"] = np.where(have2, s, NOT_EVALUATED)
    # rate of change per minute
    dt_min = np.maximum((ts - np.nan_to_num(t1)) / 60.0, 1.0 / 60.0)
    have1 = np.isfinite(p1) & np.isfinite(t1) & np.isfinite(ts)
    roc = np.abs(xv - np.nan_to_num(p1)) / dt_min
    flags["rate_of_change"] = np.where(
        have1, np.where(roc > p.roc_per_min, SUSPECT, PASS), NOT_EVALUATED
    )
    # flat line
    still = (
        have1 & (np.abs(xv - np.nan_to_num(p1)) <= p.flat_eps) & (np.abs(xv) > p.flat_ignore_below)
    )
    new_flat = np.where(missing, flat_n, np.where(still, flat_n + 1.0, 0.0))
    f = np.where(new_flat >= p.flat_suspect_n, SUSPECT, PASS)
    f = np.where(new_flat >= p.flat_fail_n, FAIL, f)
    flags["flat_line"] = np.where(have1, f, NOT_EVALUATED)

    stacked = np.stack(
        [flags[k] for k in ("gross_range", "climatology", "spike", "rate_of_change", "flat_line")]
    )
    evaluated = stacked != NOT_EVALUATED
    worst = np.where(evaluated, stacked, 0).max(axis=0)
    agg = np.where(worst == 0, NOT_EVALUATED, worst)
    agg = np.where(missing, MISSING, agg)
    bits = np.zeros(n, dtype=np.int64)
    for k, arr in flags.items():
        bits |= np.where((arr == SUSPECT) | (arr == FAIL), TEST_BITS[k], 0)
    bits = np.where(missing, TEST_BITS["missing"], bits)
    # learn only from values that did not fail (a failed value is not history)
    learn = ~missing & (agg != FAIL)
    new_rows = {
        "p1": np.where(learn, xv, p1),
        "p2": np.where(learn, p1, p2),
        "t1": np.where(learn, ts, t1),
        "flat_n": new_flat,
    }
    out = {"flag": agg.astype(np.int64), "bits": bits}
    for k, arr in flags.items():
        out[k] = np.where(missing, MISSING, arr).astype(np.int64)
    return new_rows, out


def step(
    state: QcState, reading: tuple[float, float], params: QcParams
) -> tuple[QcState, QcResult]:
    """One reading ``(ts_epoch_s, value)`` of one device."""
    ts, value = reading
    rows, out = _kernel(
        QcState.stack([state]), {"value": as_float([value]), "ts": as_float([ts])}, params
    )
    tests = {k: int(out[k][0]) for k in TEST_BITS if k in out}
    return QcState.unstack(rows)[0], QcResult(int(out["flag"][0]), int(out["bits"][0]), tests)


def step_batch(
    states: Arrays,
    device_index: np.ndarray,
    ts: np.ndarray,
    values: np.ndarray,
    params: QcParams,
) -> tuple[Arrays, dict[str, np.ndarray]]:
    """A micro-batch: ``states`` has one row per device (``QcState.stack`` /
    ``QcState.initial_arrays``), reading ``j`` belongs to row ``device_index[j]``.
    Returns new states and ``{"flag", "bits", <test>...}`` arrays aligned with the readings."""
    return run_rounds(_kernel, states, device_index, {"value": values, "ts": ts}, params)


def neighbour_consistency(
    values: np.ndarray,
    neighbour_values: np.ndarray,
    rain_60min_mm: np.ndarray,
    wet_cm: float = 5.0,
    dry_cm: float = 1.0,
    rain_needed_mm: float = 2.0,
    heavy_rain_mm: float = 15.0,
) -> np.ndarray:
    """Flag sites that disagree with nearby sites and the rain gauge.

    ``values`` (n,) depth at each site; ``neighbour_values`` (n, k) depths of up to k
    neighbours (NaN where absent); ``rain_60min_mm`` (n,) rain at the nearest gauge over
    the last hour. A site reporting water with every neighbour dry and no rain, or dry
    while most neighbours are wet in heavy rain, is SUSPECT; with fewer than two
    neighbours reporting the test is NOT_EVALUATED.
    """
    values = as_float(values)
    nb = np.atleast_2d(as_float(neighbour_values))
    rain = as_float(rain_60min_mm, values.size)
    valid = np.isfinite(nb)
    k = valid.sum(axis=1)
    wet_frac = np.where(
        k > 0, (np.where(valid, nb, 0.0) > wet_cm).sum(axis=1) / np.maximum(k, 1), 0.0
    )
    all_dry = (valid & (np.where(valid, nb, np.inf) <= dry_cm)).sum(axis=1) == k
    lone_wet = (values > wet_cm) & all_dry & (np.nan_to_num(rain) < rain_needed_mm)
    lone_dry = (values <= dry_cm) & (wet_frac >= 0.5) & (np.nan_to_num(rain) >= heavy_rain_mm)
    flag = np.where(lone_wet | lone_dry, SUSPECT, PASS)
    flag = np.where(k < 2, NOT_EVALUATED, flag)
    return np.where(np.isfinite(values), flag, MISSING).astype(np.int64)


def combine(*flags: np.ndarray) -> np.ndarray:
    """Worst-of aggregation of QARTOD flags (9 wins, then 4 > 3 > 1 > 2)."""
    stacked = np.stack([np.asarray(f, dtype=np.int64) for f in flags])
    rank = np.select(
        [stacked == MISSING, stacked == FAIL, stacked == SUSPECT, stacked == PASS], [4, 3, 2, 1], 0
    )
    best = rank.max(axis=0)
    return np.choose(best, [NOT_EVALUATED, PASS, SUSPECT, FAIL, MISSING]).astype(np.int64)


def params_for(kind: str, **overrides: Any) -> QcParams:
    base = PARAMS_BY_KIND.get(kind, QcParams())
    if not overrides:
        return base
    from dataclasses import replace

    return replace(base, **overrides)
