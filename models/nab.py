"""Our own reimplementation of the NAB scorer (Numenta Anomaly Benchmark v1.1).

Rules (see ../shared/data/README.md and NAB's sweeper): the first
``min(floor(0.15·n), 750)`` rows are probationary and neither scored nor counted; a
detection is a row whose anomaly score ≥ θ; inside a window only the best (earliest)
detection counts, worth ``A_TP·(2σ(−5y) − 1)/(2σ(5) − 1)`` with
``y = −(right − i + 1)/width``; a window without detection costs ``A_FN``; a detection
outside windows costs ``A_FP·(2σ(−5y) − 1)`` with ``y`` its distance past the previous
window's right edge over that window's width − 1 (full cost −A_FP when none precedes
it or y ≥ 3). The corpus score is normalised as ``100·(S − S_null)/(S_perfect − S_null)``.

Pure functions over numpy arrays; file loading lives in ``load_series``/``load_windows``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fn": 1.0, "fp": 0.11},
    "reward_low_FP_rate": {"tp": 1.0, "fn": 1.0, "fp": 0.22},
    "reward_low_FN_rate": {"tp": 1.0, "fn": 2.0, "fp": 0.11},
}
DEV_CATEGORIES = ("artificialNoAnomaly", "artificialWithAnomaly", "realKnownCause", "realTraffic")


def scaled_sigmoid(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=float)
    out = 2.0 / (1.0 + np.exp(np.clip(5.0 * y, -700, 700))) - 1.0
    return np.where(y >= 3.0, -1.0, out)


MAX_TP = float(scaled_sigmoid(np.array(-1.0)))


def probationary_length(n: int) -> int:
    return int(min(math.floor(0.15 * n), 0.15 * 5000))


@dataclass(frozen=True)
class Layout:
    """Per-row scoring facts of one file, independent of the detector."""

    window_id: np.ndarray  # -1 outside windows, else window number
    sweep_tp: np.ndarray  # TP value of a detection at each row (weight 1)
    sweep_fp: np.ndarray  # FP value (≤ 0, weight 1) of a detection at each row
    scorable: np.ndarray  # False in the probationary period
    n_windows: int  # windows with at least one scorable row


def layout(
    timestamps: np.ndarray, windows: Sequence[tuple[np.datetime64, np.datetime64]]
) -> Layout:
    ts = np.asarray(timestamps).astype("datetime64[s]")
    n = ts.size
    window_id = np.full(n, -1, dtype=np.int64)
    sweep_tp = np.zeros(n)
    sweep_fp = np.full(n, -1.0)
    prev_right: int | None = None
    prev_width = 0.0
    bounds = []
    for start, end in windows:
        t_start, t_end = (
            np.asarray(start).astype("datetime64[s]"),
            np.asarray(end).astype("datetime64[s]"),
        )
        left = int(np.searchsorted(ts, t_start))
        right = int(np.searchsorted(ts, t_end))
        if left >= n or ts[left] != t_start or right >= n:
            continue
        bounds.append((left, right))
    cursor = 0
    for w, (left, right) in enumerate(bounds):
        seg = np.arange(cursor, left)
        if prev_right is not None and seg.size:
            sweep_fp[seg] = scaled_sigmoid(np.abs(prev_right - seg) / (prev_width - 1.0))
        width = float(right - left + 1)
        idx = np.arange(left, right + 1)
        window_id[idx] = w
        sweep_tp[idx] = scaled_sigmoid(-(right - idx + 1) / width) / MAX_TP
        prev_right, prev_width = right, width
        cursor = right + 1
    seg = np.arange(cursor, n)
    if prev_right is not None and seg.size:
        sweep_fp[seg] = scaled_sigmoid(np.abs(prev_right - seg) / (prev_width - 1.0))
    scorable = np.arange(n) >= probationary_length(n)
    counted = {int(w) for w in np.unique(window_id[scorable & (window_id >= 0)])}
    return Layout(window_id, sweep_tp, sweep_fp, scorable, len(counted))


@dataclass(frozen=True)
class FileScore:
    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    total: int


def score_file(
    lay: Layout, scores: np.ndarray, threshold: float, profile: str = "standard"
) -> FileScore:
    """NAB score of one file at one threshold."""
    w = PROFILES[profile]
    det = (np.asarray(scores, dtype=float) >= threshold) & lay.scorable
    inwin = lay.window_id >= 0
    total = 0.0
    for wid in np.unique(lay.window_id[lay.scorable & inwin]):
        rows = det & (lay.window_id == wid)
        total += w["tp"] * float(lay.sweep_tp[rows].max()) if rows.any() else -w["fn"]
    total += w["fp"] * float(lay.sweep_fp[det & ~inwin].sum())
    tp = int((det & inwin).sum())
    fp = int((det & ~inwin).sum())
    fn = int((~det & inwin & lay.scorable).sum())
    tn = int((~det & ~inwin & lay.scorable).sum())
    return FileScore(total, tp, tn, fp, fn, int(lay.window_id.size))


def score_curve(
    lay: Layout, scores: np.ndarray, thresholds: np.ndarray, profile: str = "standard"
) -> np.ndarray:
    """Score of one file at each of many thresholds (vectorised over thresholds)."""
    w = PROFILES[profile]
    s = np.asarray(scores, dtype=float)
    th = np.asarray(thresholds, dtype=float)
    out = np.zeros(th.size)
    base = lay.scorable
    fp_rows = base & (lay.window_id < 0)
    fs = np.sort(s[fp_rows])[::-1]
    fc = np.r_[0.0, np.cumsum(lay.sweep_fp[fp_rows][np.argsort(-s[fp_rows], kind="stable")])]
    count = np.searchsorted(-fs, -th, side="right")  # rows with score >= th
    out += w["fp"] * fc[count]
    for wid in np.unique(lay.window_id[base & (lay.window_id >= 0)]):
        rows = base & (lay.window_id == wid)
        order = np.argsort(-s[rows], kind="stable")
        ss = s[rows][order]
        best = np.maximum.accumulate(lay.sweep_tp[rows][order])
        k = np.searchsorted(-ss, -th, side="right")
        out += np.where(k > 0, w["tp"] * best[np.maximum(k - 1, 0)], -w["fn"])
    return out


def normalise(raw: float, n_windows: int, profile: str = "standard") -> float:
    w = PROFILES[profile]
    null = -w["fn"] * n_windows
    perfect = w["tp"] * n_windows
    return 100.0 * (raw - null) / (perfect - null) if perfect > null else 0.0


def best_threshold(
    layouts: Mapping[str, Layout],
    scores: Mapping[str, np.ndarray],
    profile: str = "standard",
    grid: np.ndarray | None = None,
) -> tuple[float, float]:
    """θ maximising the corpus score (over a candidate grid); returns (θ, normalised)."""
    if grid is None:
        allv = np.concatenate([np.asarray(v, dtype=float) for v in scores.values()])
        grid = np.unique(np.quantile(allv, np.linspace(0.5, 1.0, 400)))
        grid = np.unique(np.r_[grid, np.linspace(0.05, 1.0, 96), np.linspace(0.95, 1.0, 201)])
    total = np.zeros(grid.size)
    for name, lay in layouts.items():
        total += score_curve(lay, scores[name], grid, profile)
    n = sum(lay.n_windows for lay in layouts.values())
    i = int(np.argmax(total))
    return float(grid[i]), normalise(float(total[i]), n, profile)


# -- data files ------------------------------------------------------------------------


def load_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    ts = np.array([r[0] for r in rows], dtype="datetime64[s]")
    vals = np.array([float(r[1]) for r in rows])
    return ts, vals


def load_windows(path: Path) -> dict[str, list[tuple[np.datetime64, np.datetime64]]]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {
        name: [(np.datetime64(a[:19], "s"), np.datetime64(b[:19], "s")) for a, b in wins]
        for name, wins in doc.items()
    }


def load_published(path: Path) -> dict[str, dict[str, float]]:
    """Per-file rows of a ``<detector>_<profile>_scores.csv``."""
    out: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["File"] == "Totals" or not row["File"]:
                continue
            out[row["File"]] = {
                k: float(row[k])
                for k in ("Threshold", "Score", "TP", "TN", "FP", "FN", "Total_Count")
            }
    return out


def windowed_gaussian(values: np.ndarray, window: int = 6400, step: int = 100) -> np.ndarray:
    """NAB's ``windowedGaussian`` baseline, used to check this scorer against its published
    per-file scores: 1 − Q-tail of the value under the normal of a sliding window (6,400
    values, moved every 100). Scores are rounded to 12 significant digits as NAB's
    Python 2 CSV round trip did (``str(float)``), which decides which rows reach θ = 1.0."""
    values = np.asarray(values, dtype=float)
    out = np.zeros(values.size)
    lo, hi = 0, 0  # window = values[lo:hi]
    pending = 0
    mean, std = 0.0, 1.0
    for i, x in enumerate(values.tolist()):
        if hi > lo:
            xp = x if x >= mean else 2 * mean - x
            out[i] = float(f"{1.0 - 0.5 * math.erfc((xp - mean) / std / math.sqrt(2)):.12g}")
        if hi - lo < window:
            hi += 1
        else:
            pending += 1
            if pending < step:
                continue
            lo, hi, pending = lo + step, hi + step, 0
        win = values[lo:hi]
        mean, std = float(np.mean(win)), float(np.std(win))
        if std == 0.0:
            std = 1e-6
    return out
