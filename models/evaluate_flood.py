"""Flood forecasting evaluation: FloodNet event profiles and simulated storms."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from models import flood_forecast as ff
from models import storms, train
from models.evaluate import INCH_CM

ISSUE_MIN = (5, 10, 15, 20, 25, 30)
LEADS = (15, 30, 60)  # the deployed forecaster's horizons


def _profiles(path: Path) -> list[dict[str, Any]]:
    out = []
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            try:
                d = np.array(json.loads(r["flood_profile_depth_inches"]), dtype=float)
                t = np.array(json.loads(r["flood_profile_time_secs"]), dtype=float)
            except (ValueError, KeyError):
                continue
            if d.size < 5:
                continue
            out.append({"start": r["flood_start_time"], "t_min": t / 60.0, "depth_in": d})
    return out


def _depth_at(ev: dict[str, Any], minute: float) -> float:
    t, d = ev["t_min"], ev["depth_in"]
    if minute > t[-1]:
        return 0.0  # the event is over: depth back below 10 mm
    return float(np.interp(minute, t, d))


def _rows(events: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, Y, E = [], [], []
    for k, ev in enumerate(events):
        for m in ISSUE_MIN:
            if m > ev["t_min"][-1]:
                break
            now = _depth_at(ev, m)
            past = [ev["depth_in"][ev["t_min"] <= m]]
            X.append(
                [
                    now,
                    now - _depth_at(ev, m - 5),
                    now - _depth_at(ev, max(m - 15, 0)),
                    m,
                    float(np.max(past[0])),
                ]
            )
            Y.append([_depth_at(ev, m + h) for h in LEADS])
            E.append(k)
    return np.array(X), np.array(Y), np.array(E)


def _skill(pred: np.ndarray, obs: np.ndarray) -> dict[str, float | None]:
    tp = int(np.sum(pred & obs))
    fp = int(np.sum(pred & ~obs))
    fn = int(np.sum(~pred & obs))
    return {
        "hit_rate": round(tp / (tp + fn), 3) if tp + fn else None,
        "false_alarm_ratio": round(fp / (tp + fp), 3) if tp + fp else None,
        # critical success index: one number that rewards hits and charges both misses
        # and false alarms (persistence never false-alarms on a rise, and never warns)
        "csi": round(tp / (tp + fp + fn), 3) if tp + fp + fn else None,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def evaluate_floodnet_profiles(
    path: Path, split: str = "2024-01-01", seed: int = 0
) -> dict[str, Any]:
    """Train on events before ``split``, test on the later ones (all before 2025)."""
    events = _profiles(path)
    train_ev = [e for e in events if e["start"] < split]
    test_ev = [e for e in events if e["start"] >= split]
    Xtr, Ytr, _ = _rows(train_ev)
    Xte, Yte, Ete = _rows(test_ev)
    out: dict[str, Any] = {
        "train_events": len(train_ev),
        "test_events": len(test_ev),
        "split": split,
        "by_lead": {},
    }
    for j, h in enumerate(LEADS):
        reg = HistGradientBoostingRegressor(max_iter=150, learning_rate=0.08, random_state=seed)
        reg.fit(Xtr, Ytr[:, j] - Xtr[:, 0])
        pred = Xte[:, 0] + reg.predict(Xte)
        res: dict[str, Any] = {
            "mae_in": {
                "model": round(float(np.abs(pred - Yte[:, j]).mean()), 3),
                "persistence": round(float(np.abs(Xte[:, 0] - Yte[:, j]).mean()), 3),
            },
        }
        for thr in (4.0, 12.0):
            clf = HistGradientBoostingClassifier(
                max_iter=150, learning_rate=0.08, random_state=seed
            )
            ytr = Ytr[:, j] > thr
            if ytr.all() or not ytr.any():
                continue
            clf.fit(Xtr, ytr)
            p = clf.predict_proba(Xte)[:, 1]
            obs = Yte[:, j] > thr
            model = _skill(p >= 0.5, obs)
            persist = _skill(Xte[:, 0] > thr, obs)
            # lead time: per test event that crosses thr, minutes between the first
            # warning (issue time + lead) and the first observed crossing
            leads_m, leads_p = [], []
            for k in np.unique(Ete):
                ev = test_ev[k]
                cross = ev["t_min"][ev["depth_in"] > thr]
                if cross.size == 0:
                    continue
                rows = np.flatnonzero(Ete == k)
                warn = [Xte[r, 3] for r in rows if p[r] >= 0.5]
                pers = [Xte[r, 3] for r in rows if Xte[r, 0] > thr]
                if warn:
                    leads_m.append(cross[0] - warn[0])
                if pers:
                    leads_p.append(cross[0] - pers[0])
            res[f"exceed_{thr:g}in"] = {
                "model": model,
                "persistence": persist,
                "median_lead_min_model": round(float(np.median(leads_m)), 1) if leads_m else None,
                "median_lead_min_persistence": round(float(np.median(leads_p)), 1)
                if leads_p
                else None,
                "brier": round(float(np.mean((p - obs) ** 2)), 4),
            }
        out["by_lead"][str(h)] = res
    out["cm_per_inch"] = INCH_CM
    return out


def _episode_leads(
    pred: np.ndarray, depth_now: np.ndarray, thr: float, site: np.ndarray, t: np.ndarray
) -> list[float]:
    """Per site whose observed depth crosses ``thr``: minutes from the first warning
    issued at or before the first observed crossing to that crossing (0 = warned only
    when it happened, as persistence does)."""
    leads = []
    for s in np.unique(site):
        rows = np.flatnonzero(site == s)
        crossed = rows[depth_now[rows] > thr]
        if crossed.size == 0:
            continue
        t_cross = t[crossed].min()
        warned = rows[pred[rows] & (t[rows] <= t_cross)]
        if warned.size:
            leads.append((t_cross - t[warned].min()) / 60.0)
    return leads


def evaluate_storms(
    datasets: list[tuple[str, dict[str, np.ndarray], ff.Sites]], model: Any = None
) -> dict[str, Any]:
    """Depth MAE and exceedance skill per horizon on simulated storms vs persistence."""
    out: dict[str, Any] = {}
    rel_p, rel_o = [], []
    for name, ds, sites in datasets:
        X, Y = ds["X"], ds["Y"]
        if X.shape[0] == 0:
            continue
        S = sites.take(ds["site"])
        forecasters = {"reservoir": ff.ReservoirForecaster()}
        if model is not None:
            forecasters["trained"] = model
        wet = (X[:, 0] > 0.5) | (Y.max(axis=1) > 0.5)
        if not wet.any():
            out[name] = {"samples": int(X.shape[0]), "wet_samples": 0}
            continue
        res: dict[str, Any] = {"samples": int(X.shape[0]), "wet_samples": int(wet.sum())}
        base = {"persistence": ff.persistence(X), "linear": ff.linear_extrapolation(X)}
        for k, h in enumerate(ff.HORIZONS_MIN):
            hr: dict[str, Any] = {
                "mae_cm": {
                    n: round(float(np.abs(p[wet, k] - Y[wet, k]).mean()), 3)
                    for n, p in base.items()
                }
            }
            for fname, f in forecasters.items():
                fc = f.predict(X, S)
                hr["mae_cm"][fname] = round(float(np.abs(fc.q50[wet, k] - Y[wet, k]).mean()), 3)
                hr[f"coverage_q10_q90_{fname}"] = round(
                    float(((Y[wet, k] >= fc.q10[wet, k]) & (Y[wet, k] <= fc.q90[wet, k])).mean()), 3
                )
                for thr in ff.THRESHOLDS_CM:
                    obs = Y[:, k] > thr
                    pred = fc.p_exceed[thr][:, k] >= 0.5
                    sk = _skill(pred, obs)
                    leads = _episode_leads(pred, X[:, 0], thr, ds["site"], ds["ts"])
                    sk["median_lead_min"] = _median(leads)
                    sk["sites_warned_before_crossing"] = len(leads)
                    hr[f"exceed_{thr:g}cm_{fname}"] = sk
                    if fname == ("trained" if model is not None else "reservoir") and thr == 15.0:
                        rel_p.append(fc.p_exceed[thr][wet, k])
                        rel_o.append(obs[wet])
            for thr in ff.THRESHOLDS_CM:
                obs = Y[:, k] > thr
                pred = X[:, 0] > thr
                sk = _skill(pred, obs)
                leads = _episode_leads(pred, X[:, 0], thr, ds["site"], ds["ts"])
                sk["median_lead_min"] = _median(leads)
                sk["sites_warned_before_crossing"] = len(leads)
                hr[f"exceed_{thr:g}cm_persistence"] = sk
            res[f"+{h}min"] = hr
        out[name] = res
    if rel_p:
        p, o = np.concatenate(rel_p), np.concatenate(rel_o)
        edges = np.linspace(0, 1, 11)
        b = np.clip(np.digitize(p, edges) - 1, 0, 9)
        out["_plot"] = {
            "reliability": [
                (float(p[b == i].mean()), float(o[b == i].mean()), int((b == i).sum()))
                for i in range(10)
                if (b == i).any()
            ]
        }
    return out


def _median(v: list[float]) -> float | None:
    return round(float(np.median(v)), 1) if v else None


def storm_datasets(
    seeds: tuple[int, ...], n_sites: int = 40, minutes: int = 2 * 1440
) -> list[tuple[str, dict[str, np.ndarray], ff.Sites]]:
    out = []
    for s in seeds:
        run = storms.simulate(s, n_sites=n_sites, minutes=minutes)
        out.append((f"storms-seed{s}", storms.dataset(run), run.sites))
    return out


def _csi(tp: int, fp: int, fn: int) -> float | None:
    return round(tp / (tp + fp + fn), 3) if tp + fp + fn else None


def _row(data: str, h: int, fname: str, measure: str, ours: Any, pers: Any) -> dict[str, Any]:
    if measure.startswith("depth MAE"):
        beats = ours < pers
    elif pers is None:  # nothing exceeded and persistence never warned
        beats = ours is None
    else:
        beats = ours is not None and ours >= pers
    return {
        "data": data,
        "horizon_min": h,
        "forecaster": fname,
        "measure": measure,
        "ours": ours,
        "persistence": pers,
        "beats_persistence": bool(beats),
    }


def versus_persistence(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's target, per data set and horizon: the flood forecaster (the trained one
    where evaluated, else the reservoir default) against persistence on depth MAE (per
    storm run) and on the critical success index of exceedance warnings, pooled over the
    storm runs (a run in which nothing exceeds a depth has no CSI of its own) or over the
    FloodNet test events."""
    rows: list[dict[str, Any]] = []
    runs = {k: v for k, v in results.get("storms", {}).items() if not k.startswith("_")}
    for h in ff.HORIZONS_MIN:
        key = f"+{h}min"
        pooled: dict[tuple[str, float], list[int]] = {}
        fname = "reservoir"
        for name, r in runs.items():
            hr = r.get(key)
            if not hr:
                continue
            fname = "trained" if "trained" in hr["mae_cm"] else "reservoir"
            mae = hr["mae_cm"]
            rows.append(_row(name, h, fname, "depth MAE (cm)", mae[fname], mae["persistence"]))
            for thr in ff.THRESHOLDS_CM:
                for who in (fname, "persistence"):
                    sk = hr[f"exceed_{thr:g}cm_{who}"]
                    acc = pooled.setdefault((who, thr), [0, 0, 0])
                    for i, c in enumerate(("tp", "fp", "fn")):
                        acc[i] += int(sk[c])
        for thr in ff.THRESHOLDS_CM:
            if (fname, thr) in pooled:
                rows.append(
                    _row(
                        "storms (all runs)",
                        h,
                        fname,
                        f"CSI exceed {thr:g} cm",
                        _csi(*pooled[(fname, thr)]),
                        _csi(*pooled[("persistence", thr)]),
                    )
                )
    fp = results.get("floodnet_profiles")
    for lead, r in (fp or {}).get("by_lead", {}).items():
        data = "FloodNet event profiles"
        model = "HGB on profiles"
        mae = r["mae_in"]
        rows.append(
            _row(data, int(lead), model, "depth MAE (in)", mae["model"], mae["persistence"])
        )
        for key in (k for k in r if k.startswith("exceed")):
            label = "CSI exceed " + key.removeprefix("exceed_").replace("in", " in")
            rows.append(
                _row(
                    data,
                    int(lead),
                    model,
                    label,
                    r[key]["model"]["csi"],
                    r[key]["persistence"]["csi"],
                )
            )
    return rows


__all__ = [
    "evaluate_floodnet_profiles",
    "evaluate_storms",
    "storm_datasets",
    "train",
    "versus_persistence",
]
