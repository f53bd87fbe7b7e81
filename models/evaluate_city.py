"""City-feed evaluations: Norfolk rain → flooded-street reports; Capital Bikeshare 2011
storm-driven demand collapses found by the online detector."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from models import detectors
from models.evaluate import naive_epoch

HOUR = 3600.0


def _norfolk_rain(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """City-wide 15-min rain (inches): the wetter of the gauges in each slot."""
    slots: dict[float, float] = {}
    with (root / "rain_15min_nonzero.csv").open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            t = naive_epoch(r["timestamp"])
            slots[t] = max(slots.get(t, 0.0), float(r["rain_in"]))
    ts = np.array(sorted(slots))
    return ts, np.array([slots[t] for t in ts])


def _reports(root: Path) -> np.ndarray:
    path = next(root.glob("flood_reports_STORM_*.csv"))
    with path.open(encoding="utf-8-sig") as fh:
        return np.sort(np.array([naive_epoch(r["dt"]) for r in csv.DictReader(fh) if r.get("dt")]))


def _clusters(t: np.ndarray, gap: float) -> list[float]:
    if t.size == 0:
        return []
    starts = [t[0]] + [b for a, b in itertools.pairwise(t) if b - a > gap]
    return [float(x) for x in starts]


def _episodes(t: np.ndarray, gap: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for x in t:
        if out and x - out[-1][1] <= gap:
            out[-1] = (out[-1][0], float(x))
        else:
            out.append((float(x), float(x)))
    return out


def _norfolk_skill(
    rain_t: np.ndarray, rain: np.ndarray, rep: np.ndarray, theta: float, horizon_h: float
) -> dict[str, Any]:
    """Alert episodes (15-min rain ≥ θ, 12 h apart) against report clusters (12 h apart).

    An episode is a hit if a report follows within ``horizon_h`` of its last alert slot;
    a cluster is warned if an alert slot fell in the ``horizon_h`` before its first report
    (lead = first report − first such slot)."""
    alert_t = rain_t[rain >= theta]
    episodes = _episodes(alert_t, 12 * HOUR)
    clusters = _clusters(rep, 12 * HOUR)
    tp = sum(bool(np.any((rep > s) & (rep <= e + horizon_h * HOUR))) for s, e in episodes)
    leads = []
    for c in clusters:
        before = alert_t[(alert_t >= c - horizon_h * HOUR) & (alert_t <= c)]
        if before.size:
            leads.append((c - before[0]) / HOUR)
    return {
        "threshold_in_per_15min": theta,
        "alert_episodes": len(episodes),
        "episodes_followed_by_reports": tp,
        "false_alarm_ratio": round(1 - tp / len(episodes), 3) if episodes else None,
        "report_clusters": len(clusters),
        "clusters_warned": len(leads),
        "hit_rate": round(len(leads) / len(clusters), 3) if clusters else None,
        "median_lead_h": round(float(np.median(leads)), 2) if leads else None,
    }


def evaluate_norfolk(
    root: Path, horizon_h: float = 6.0, split: str = "2013-01-01"
) -> dict[str, Any]:
    """θ chosen on reports before ``split`` (max critical success index), scored after."""
    rain_t, rain = _norfolk_rain(root)
    rep = _reports(root)
    cut = naive_epoch(split + " 00:00:00")
    grid = [0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0]
    best, best_csi = grid[0], -1.0
    train_curve = []
    for th in grid:
        sk = _norfolk_skill(rain_t[rain_t < cut], rain[rain_t < cut], rep[rep < cut], th, horizon_h)
        fp = sk["alert_episodes"] - sk["episodes_followed_by_reports"]
        fn = sk["report_clusters"] - sk["clusters_warned"]
        csi = sk["clusters_warned"] / max(sk["clusters_warned"] + fp + fn, 1)
        train_curve.append({**sk, "csi": round(csi, 3)})
        if csi > best_csi:
            best, best_csi = th, csi
    test = _norfolk_skill(
        rain_t[rain_t >= cut], rain[rain_t >= cut], rep[rep >= cut], best, horizon_h
    )
    return {
        "horizon_h": horizon_h,
        "split": split,
        "chosen_threshold_in": best,
        "train": train_curve,
        "test": test,
        "note": "Norfolk street flooding is often tidal (nor'easters, king tides); "
        "rain alone misses those.",
    }


def evaluate_bikes(path: Path, params: detectors.DetectorParams | None = None) -> dict[str, Any]:
    """Run the online detector over 2011 hourly demand; which days does it flag?"""
    params = params or detectors.DetectorParams()
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    ts = np.array([naive_epoch(r["dteday"] + " 00:00:00") + int(r["hr"]) * HOUR for r in rows])
    cnt = np.array([float(r["cnt"]) for r in rows])
    scores = detectors.score_series(np.log1p(cnt)[:, None], params, ts[:, None])[:, 0]
    alerts = scores >= params.threshold
    days = sorted({rows[i]["dteday"] for i in np.flatnonzero(alerts)})
    storms = {
        "2011-01-26 snowstorm": ("2011-01-26", "2011-01-27"),
        "Hurricane Irene": ("2011-08-27", "2011-08-28"),
    }
    found = {name: any(d in pair for d in days) for name, pair in storms.items()}
    heavy = sorted({r["dteday"] for r in rows if r["weathersit"] in ("3", "4")})
    heavy_found = sum(d in days for d in heavy)
    return {
        "hours": len(rows),
        "alert_hours": int(alerts.sum()),
        "alert_days": len(days),
        "storms_flagged": found,
        "days_with_heavy_rain_or_snow": len(heavy),
        "of_which_flagged": heavy_found,
        "flagged_days": days[:60],
        "_plot": {"ts": ts, "cnt": cnt, "scores": scores},
    }


def evaluate_calit2(root: Path) -> dict[str, Any]:
    """Camera baselines on the CalIt2 door counts (a stand-in for camera person counts).

    Descriptive only: the event labels are not in the repository, so this reports how
    often and when P(crowding) > 0.5 fires after a four-week learning period."""
    from models import camera_baseline as cb

    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        with (root / name).open(encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if len(r) == 2]
        ts = np.array([naive_epoch(_us_date(r[0])) for r in rows])
        return ts, np.array([float(r[1]) for r in rows])

    ts, inflow = read("cal_inflow_30min.csv")
    counts = np.zeros((ts.size, len(cb.CLASSES)))
    counts[:, cb.CLASSES.index("person")] = inflow
    _, probs = cb.step_batch(
        cb.initial(1), np.zeros(ts.size, np.int64), ts, counts, cb.CameraParams()
    )
    p = probs[:, cb.CLASSES.index("person")]
    learn = ts < ts[0] + 28 * 86400
    fired = (p > 0.5) & ~learn
    days = sorted({str(np.datetime64(int(t), "s"))[:10] for t in ts[fired]})
    return {
        "readings": int(ts.size),
        "learning_weeks": 4,
        "crowding_readings": int(fired.sum()),
        "crowding_days": len(days),
        "days": days[:40],
        "note": "no event labels available (CalIt2.events is not in the repository)",
    }


def _us_date(text: str) -> str:
    """'07/24/05 00:00:00' → '2005-07-24 00:00:00'."""
    d, t = text.strip().split(" ")
    mm, dd, yy = d.split("/")
    return f"20{yy}-{mm}-{dd} {t}"
