"""Per-site streaming feature state for the flood forecaster (fixed size, no history).

The stream job keeps one ``FloodState`` per waterlogging site and updates it with

* ``update_depth_batch(states, site_index, ts, level_cm)`` for each QC-passed water
  reading of the site (send NaN, or skip, for readings QC flagged 4 or 9), and
* ``update_rain_batch(states, site_index, ts, rain_mm, intensity_mm_h)`` for each
  reading of the rain gauge serving the site (a gauge's reading updates every site it
  serves: repeat it once per site in ``site_index``).

``features(states, attrs, now)`` turns the states into the model's feature matrix
(``FEATURES``, in that order). Rain is held as twelve 5-minute bins (the last hour);
depth as the last value, an EW slope (cm/min, τ = 10 min) and an EW level (τ = 15 min);
``routed_mm_h`` is the catchment's lagged runoff (linear reservoir, lag 10 min) that the
physical forecaster starts from. Times are epoch seconds.

``RainHistory`` keeps each gauge's rain fields after each of its readings, so that a
site is forecast with the rain that had fallen by the time of *its* reading, whichever
of the two streams a consumer has read further.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import numpy as np

from models.state import Arrays, StepState, as_float, run_rounds

BIN_S = 300.0
N_BINS = 12
RUNOFF_COEFF = 0.75
LAG_S = 600.0
SLOPE_TAU_S = 600.0
LEVEL_TAU_S = 900.0
DRY_GAP_S = 3600.0  # a storm starts after an hour without rain
CAP_MIN = 360.0

FEATURES: tuple[str, ...] = (
    "depth_cm",
    "slope_cm_min",
    "trend_cm",
    "rain_15_mm",
    "rain_30_mm",
    "rain_60_mm",
    "intensity_mm_h",
    "routed_mm_h",
    "drainage_mm_h",
    "min_since_rain_start",
    "min_since_rain",
)


@dataclass(frozen=True)
class _FloodCore(StepState):
    depth_cm: float = float("nan")
    t_depth: float = float("nan")
    slope: float = 0.0
    level_ewm: float = float("nan")
    t_bin: float = float("nan")  # start of the newest rain bin
    intensity: float = 0.0
    t_rain: float = float("nan")  # last rain reading
    rain_start: float = float("nan")
    last_wet: float = float("nan")
    routed: float = 0.0  # mm/h over the catchment


_BINS = [f"r{i}" for i in range(N_BINS)]
FloodState: type[_FloodCore] = make_dataclass(
    "FloodState",
    [(b, float, field(default=0.0)) for b in _BINS],
    bases=(_FloodCore,),
    frozen=True,
)
FloodState.__doc__ = "Per-site flood features: depth, slope, rain bins r0 (newest) .. r11."
DEPTH_FIELDS: tuple[str, ...] = ("depth_cm", "t_depth", "slope", "level_ewm")
RAIN_FIELDS: tuple[str, ...] = tuple(f for f in FloodState.field_names() if f not in DEPTH_FIELDS)


class RainHistory:
    """Each gauge's rain state (``RAIN_FIELDS``) after each of its readings, over the
    last ``keep_s`` of event time before its newest one.

    A view that folds the rain topic runs ahead of the water readings whenever the two
    are consumed at different speeds (a replay faster than real time, a worker catching
    up a backlog): its newest state then holds rain that had not fallen yet when a
    site's reading was taken (look-ahead), or a storm that is long over. ``at(gauge, t)``
    is the state as it stood at event time ``t``: after the gauge's newest reading at or
    before ``t``, None before its first reading (or before the kept span).

    Per gauge a numpy buffer of rows ``(ts, *fields)`` in time order (readings are only
    recorded in order, as the rain state accepts them): ``keep_s`` of one-minute
    readings costs ≈ 60 kB per gauge for 6 hours.
    """

    def __init__(self, keep_s: float = 6 * 3600.0, fields: Sequence[str] = RAIN_FIELDS) -> None:
        self.keep_s = keep_s
        self.fields = tuple(fields)
        self._rows: dict[str, np.ndarray] = {}
        self._n: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(self._n.values())

    def record(self, gauge: str, ts: float, state: Mapping[str, float]) -> bool:
        """Keep ``state`` as the gauge's state from ``ts`` on; a time at or before the
        gauge's newest recorded one is refused (returns False)."""
        if not np.isfinite(ts):
            return False
        buf = self._rows.get(gauge)
        n = self._n.get(gauge, 0)
        if buf is not None and n and ts <= buf[n - 1, 0]:
            return False
        if buf is None or n == buf.shape[0]:
            buf, n = self._make_room(buf, n, ts)
            self._rows[gauge] = buf
        buf[n, 0] = ts
        buf[n, 1:] = [float(state.get(f, np.nan)) for f in self.fields]
        self._n[gauge] = n + 1
        return True

    def _make_room(self, buf: np.ndarray | None, n: int, ts: float) -> tuple[np.ndarray, int]:
        if buf is None:
            return np.empty((64, 1 + len(self.fields))), 0
        # drop what is older than keep_s, but keep the newest row before the span: it
        # is the state at the span's start
        old = int(np.searchsorted(buf[:n, 0], ts - self.keep_s, side="right")) - 1
        if old > 0:
            buf[: n - old] = buf[old:n]
            n -= old
        if n > buf.shape[0] // 2:
            grown = np.empty((buf.shape[0] * 2, buf.shape[1]))
            grown[:n] = buf[:n]
            buf = grown
        return buf, n

    def at(self, gauge: str, ts: float) -> dict[str, float] | None:
        """The gauge's state at event time ``ts`` (None if nothing was recorded by then)."""
        buf = self._rows.get(gauge)
        n = self._n.get(gauge, 0)
        if buf is None or not n or not np.isfinite(ts):
            return None
        k = int(np.searchsorted(buf[:n, 0], ts, side="right")) - 1
        if k < 0:
            return None
        return dict(zip(self.fields, buf[k, 1:].tolist(), strict=True))

    def newest(self, gauge: str) -> float | None:
        """Event time of the gauge's newest recorded state."""
        n = self._n.get(gauge, 0)
        return float(self._rows[gauge][n - 1, 0]) if n else None


def _depth_kernel(
    rows: Arrays, inp: dict[str, np.ndarray], _p: Any
) -> tuple[Arrays, dict[str, np.ndarray]]:
    ts, d = inp["ts"].astype(float), inp["level_cm"].astype(float)
    ok = np.isfinite(d) & np.isfinite(ts) & ~(ts <= rows["t_depth"])
    d = np.maximum(np.where(ok, d, 0.0), 0.0)
    first = ~np.isfinite(rows["depth_cm"])
    dt = np.where(first, 60.0, np.maximum(ts - np.nan_to_num(rows["t_depth"]), 1.0))
    inst = np.where(first, 0.0, (d - np.nan_to_num(rows["depth_cm"])) / (dt / 60.0))
    a_s = 1.0 - np.exp(-dt / SLOPE_TAU_S)
    a_l = 1.0 - np.exp(-dt / LEVEL_TAU_S)
    new = dict(rows)
    new["slope"] = np.where(ok, rows["slope"] + a_s * (inst - rows["slope"]), rows["slope"])
    lvl = np.where(first, d, rows["level_ewm"] + a_l * (d - np.nan_to_num(rows["level_ewm"])))
    new["level_ewm"] = np.where(ok, lvl, rows["level_ewm"])
    new["depth_cm"] = np.where(ok, d, rows["depth_cm"])
    new["t_depth"] = np.where(ok, ts, rows["t_depth"])
    return new, {"accepted": ok}


def _shift_bins(rows: Arrays, ts: np.ndarray, ok: np.ndarray) -> Arrays:
    """Advance the bins so that r0 is the bin holding ``ts``."""
    t_bin = rows["t_bin"]
    start = np.floor(ts / BIN_S) * BIN_S
    k = np.where(np.isfinite(t_bin), np.floor((start - np.nan_to_num(t_bin)) / BIN_S), N_BINS)
    k = np.where(ok, np.clip(k, 0, N_BINS), 0).astype(np.int64)
    mat = np.column_stack([rows[b] for b in _BINS])
    idx = np.arange(N_BINS)[None, :] - k[:, None]
    shifted = np.where(idx >= 0, np.take_along_axis(mat, np.clip(idx, 0, N_BINS - 1), axis=1), 0.0)
    out = dict(rows)
    for j, b in enumerate(_BINS):
        out[b] = shifted[:, j]
    out["t_bin"] = np.where(ok & ((k > 0) | ~np.isfinite(t_bin)), start, t_bin)
    return out


def _rain_kernel(
    rows: Arrays, inp: dict[str, np.ndarray], _p: Any
) -> tuple[Arrays, dict[str, np.ndarray]]:
    ts = inp["ts"].astype(float)
    mm, ih = inp["rain_mm"].astype(float), inp["intensity_mm_h"].astype(float)
    ok = np.isfinite(ts) & (np.isfinite(mm) | np.isfinite(ih)) & ~(ts <= rows["t_rain"])
    dt = np.where(np.isfinite(rows["t_rain"]), ts - np.nan_to_num(rows["t_rain"]), 60.0)
    dt = np.clip(dt, 1.0, 3600.0)
    mm = np.where(np.isfinite(mm), mm, np.nan_to_num(ih) * dt / 3600.0)
    ih = np.where(np.isfinite(ih), ih, mm / dt * 3600.0)
    mm, ih = np.maximum(np.where(ok, mm, 0.0), 0.0), np.maximum(np.where(ok, ih, 0.0), 0.0)
    new = _shift_bins(rows, ts, ok)
    new["r0"] = new["r0"] + mm
    wet = ok & (mm > 0)
    new_storm = wet & (
        ~np.isfinite(rows["last_wet"]) | (ts - np.nan_to_num(rows["last_wet"]) > DRY_GAP_S)
    )
    new["rain_start"] = np.where(new_storm, ts, rows["rain_start"])
    new["last_wet"] = np.where(wet, ts, rows["last_wet"])
    # the routed runoff follows the intensity over the interval just ended
    a = 1.0 - np.exp(-dt / LAG_S)
    routed = rows["routed"] + a * (RUNOFF_COEFF * ih - rows["routed"])
    new["routed"] = np.where(ok, routed, rows["routed"])
    new["intensity"] = np.where(ok, ih, rows["intensity"])
    new["t_rain"] = np.where(ok, ts, rows["t_rain"])
    for k in rows:
        new[k] = np.where(ok, new[k], rows[k])
    return new, {"accepted": ok}


def update_depth_batch(
    states: Arrays, site_index: np.ndarray, ts: np.ndarray, level_cm: np.ndarray
) -> tuple[Arrays, np.ndarray]:
    """Fold water readings into the site states; returns (states, accepted mask)."""
    st, out = run_rounds(
        _depth_kernel,
        states,
        site_index,
        {"ts": as_float(ts), "level_cm": as_float(level_cm)},
        None,
    )
    return st, out.get("accepted", np.zeros(0, dtype=bool))


def update_rain_batch(
    states: Arrays,
    site_index: np.ndarray,
    ts: np.ndarray,
    rain_mm: np.ndarray,
    intensity_mm_h: np.ndarray,
) -> tuple[Arrays, np.ndarray]:
    """Fold rain-gauge readings into the states of the sites they serve."""
    n = np.asarray(site_index).size
    inp = {
        "ts": as_float(ts, n),
        "rain_mm": as_float(rain_mm, n),
        "intensity_mm_h": as_float(intensity_mm_h, n),
    }
    st, out = run_rounds(_rain_kernel, states, site_index, inp, None)
    return st, out.get("accepted", np.zeros(0, dtype=bool))


def update_depth(state: Any, ts: float, level_cm: float) -> Any:
    st, _ = update_depth_batch(
        FloodState.stack([state]), np.zeros(1, np.int64), as_float([ts]), as_float([level_cm])
    )
    return FloodState.unstack(st)[0]


def update_rain(state: Any, ts: float, rain_mm: float | None, intensity_mm_h: float | None) -> Any:
    mm = np.nan if rain_mm is None else rain_mm
    ih = np.nan if intensity_mm_h is None else intensity_mm_h
    st, _ = update_rain_batch(
        FloodState.stack([state]),
        np.zeros(1, np.int64),
        as_float([ts]),
        as_float([mm]),
        as_float([ih]),
    )
    return FloodState.unstack(st)[0]


def rain_totals(states: Arrays, now: np.ndarray) -> dict[int, np.ndarray]:
    """Rain (mm) over the last 15/30/60 minutes before ``now`` (bins overlapping it)."""
    now = as_float(now, states["r0"].size)
    mat = np.column_stack([states[b] for b in _BINS])
    t_bin = states["t_bin"]
    bin_end = (
        np.nan_to_num(t_bin, nan=-np.inf)[:, None] - BIN_S * np.arange(N_BINS)[None, :] + BIN_S
    )
    out = {}
    for w in (15, 30, 60):
        mask = bin_end > (now[:, None] - w * 60.0 + 1e-6)
        out[w] = np.where(mask, mat, 0.0).sum(axis=1)
    return out


def features(states: Arrays, drainage_mm_h: np.ndarray, now: np.ndarray) -> np.ndarray:
    """Feature matrix (n, len(FEATURES)) at time ``now`` (epoch s, per site or scalar)."""
    n = states["r0"].size
    now = as_float(now, n)
    rt = rain_totals(states, now)
    depth = np.nan_to_num(states["depth_cm"])
    stale_rain = ~np.isfinite(states["t_rain"]) | (now - np.nan_to_num(states["t_rain"]) > 900.0)
    intensity = np.where(stale_rain, 0.0, states["intensity"])
    since_start = np.where(
        np.isfinite(states["rain_start"]) & (rt[60] > 0),
        np.minimum((now - np.nan_to_num(states["rain_start"])) / 60.0, CAP_MIN),
        0.0,
    )
    since_rain = np.where(
        np.isfinite(states["last_wet"]),
        np.clip((now - np.nan_to_num(states["last_wet"])) / 60.0, 0.0, CAP_MIN),
        CAP_MIN,
    )
    # routed runoff decays while no rain reading arrives
    gap = np.where(
        np.isfinite(states["t_rain"]), np.maximum(now - np.nan_to_num(states["t_rain"]), 0.0), 0.0
    )
    routed = states["routed"] * np.exp(-np.where(stale_rain, gap, 0.0) / LAG_S)
    cols = [
        depth,
        states["slope"],
        depth - np.where(np.isfinite(states["level_ewm"]), states["level_ewm"], depth),
        rt[15],
        rt[30],
        rt[60],
        intensity,
        routed,
        as_float(drainage_mm_h, n),
        since_start,
        since_rain,
    ]
    return np.column_stack(cols)
