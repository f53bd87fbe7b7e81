"""Markdown report, PNG plots (matplotlib, Agg) and JSON of an evaluation run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def strip_plots(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: strip_plots(v) for k, v in doc.items() if not k.startswith("_")}
    if isinstance(doc, list):
        return [strip_plots(v) for v in doc]
    if isinstance(doc, np.generic):
        return doc.item()
    return doc


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(strip_plots(results), indent=2, sort_keys=True, default=float) + "\n",
        encoding="utf-8",
    )


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def plots(results: dict[str, Any], out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    nab = results.get("nab")
    if nab:
        names = sorted(nab["published"], key=lambda k: nab["published"][k].get("standard", -1e9))
        vals = [nab["published"][n].get("standard", np.nan) for n in names]
        names.append("GridWatch (ours)")
        vals.append(nab["ours"]["standard"]["normalised_at_tuned_threshold"])
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.barh(names, vals, color=["#999"] * (len(vals) - 1) + ["#d62728"])
        ax.set_xlabel("NAB normalised score, standard profile (development categories)")
        made["nab"] = _save(fig, out / "nab_standard.png")
    fn = results.get("floodnet_raw", {}).get("_plot")
    if fn:
        fig, ax = plt.subplots(figsize=(9, 3.5))
        t0 = fn["ts"][0]
        ax.plot((fn["ts"] - t0) / 86400, fn["depth"], lw=0.6)
        for s, e in fn["labels"]:
            ax.axvspan((s - t0) / 86400, (e - t0) / 86400, color="orange", alpha=0.3)
        ax.set_xlabel("days from start")
        ax.set_ylabel("online QC'd depth (cm)")
        ax.set_title("Beach 84 St raw uplinks; orange = FloodNet QC'd events")
        made["floodnet"] = _save(fig, out / "floodnet_beach84.png")
    rel = results.get("storms", {}).get("_plot", {}).get("reliability")
    if rel:
        p, o, _n = zip(*rel, strict=True)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        ax.plot(p, o, "o-")
        ax.set_xlabel("forecast P(depth > 15 cm)")
        ax.set_ylabel("observed frequency")
        ax.set_title("Reliability, simulated storms")
        made["reliability"] = _save(fig, out / "reliability_storms.png")
    bk = results.get("bikes", {}).get("_plot")
    if bk:
        fig, ax = plt.subplots(figsize=(9, 3.5))
        days = (bk["ts"] - bk["ts"][0]) / 86400
        ax.plot(days, bk["cnt"], lw=0.4)
        hits = bk["scores"] >= results["bikes"].get("threshold", 0.99)
        ax.plot(days[hits], bk["cnt"][hits], "rv")
        ax.set_xlabel("day of 2011")
        ax.set_ylabel("rentals per hour")
        made["bikes"] = _save(fig, out / "bikes_2011.png")
    return made


def _table(rows: list[list[Any]], head: list[str]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(results: dict[str, Any], images: dict[str, str]) -> str:
    parts = ["# GridWatch models — evaluation report", ""]
    nab = results.get("nab")
    if nab:
        parts += [
            "## NAB (development categories)",
            "",
            f"{nab['files']} files, {nab['windows']} windows. Our scorer is checked against NAB's published per-file scores (tests).",  # noqa: E501 - report prose
            "",
        ]
        rows = [
            [
                p,
                v["normalised_at_tuned_threshold"],
                v["tuned_threshold"],
                v["normalised_at_profile_optimal_threshold"],
            ]
            for p, v in nab["ours"].items()
        ]
        parts += [
            _table(
                rows, ["profile", "ours (θ tuned on these files)", "θ", "ours at profile-optimal θ"]
            ),
            "",
        ]
        rows = [
            [d, *(s.get(p, "") for p in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"))]
            for d, s in sorted(nab["published"].items())
        ]
        parts += [
            "Published detectors, same files and normalisation:",
            "",
            _table(rows, ["detector", "standard", "low FP", "low FN"]),
            "",
        ]
        cats = nab.get("per_category_standard", {})
        if cats:
            dets = sorted({d for c in cats.values() for d in c["raw_standard"]} - {"ours"})
            rows = [
                [
                    cat,
                    c["files"],
                    c["windows"],
                    c["raw_standard"]["ours"],
                    *(c["raw_standard"].get(d, "") for d in dets),
                ]
                for cat, c in cats.items()
            ]
            parts += [
                "Raw standard-profile score per category (sum of per-file scores at the "
                "chosen θ; a window is worth at most +1, a miss costs 1, a false positive up "
                "to 0.11):",
                "",
                _table(rows, ["category", "files", "windows", "ours", *dets]),
                "",
            ]
        if "nab" in images:
            parts += [f"![NAB]({images['nab']})", ""]
    fr = results.get("floodnet_raw")
    if fr:
        parts += [
            "## FloodNet — Beach 84 St raw uplinks",
            "",
            f"QC'd flood events detected: **{fr['detected']}/{fr['qc_events']}**, median detection delay {fr['median_delay_min']} min (negative = before FloodNet's QC'd start).",  # noqa: E501 - report prose
            f"Detections not matching a QC'd event at Beach 84 St (a tidal site): {fr['false_detections_beach84']}.",  # noqa: E501 - report prose
            f"Dry control (Beach 43rd St, {fr['dry_control_days']} days): our false flood detections {fr['dry_control_false_detections_ours']}, FloodNet's own `flood_detected` episodes {fr['dry_control_floodnet_flag_episodes']}. (Detection rule: depth ≥ 2 cm for 3 readings, chosen on this development split.)",  # noqa: E501 - report prose
            "",
        ]
        rows = [
            [e["start"], e["max_depth_in"], e["detected"], e["delay_min"]] for e in fr["events"]
        ]
        parts += [
            _table(rows, ["QC'd start (UTC)", "max depth (in)", "detected", "delay (min)"]),
            "",
        ]
        if "floodnet" in images:
            parts += [f"![FloodNet]({images['floodnet']})", ""]
    fp = results.get("floodnet_profiles")
    if fp:
        parts += [
            "## FloodNet — forecasting from an event's first minutes",
            "",
            f"Trained on {fp['train_events']} events before {fp['split']}, tested on {fp['test_events']} later events (issue times 5–30 min into each event; the profiles carry no rain, so this model sees depth only). CSI = hits / (hits + misses + false alarms).",  # noqa: E501 - report prose
            "",
        ]
        rows = []
        for lead, r in fp["by_lead"].items():
            for k, v in r.items():
                if k.startswith("exceed"):
                    rows.append(
                        [
                            lead,
                            k,
                            v["model"]["hit_rate"],
                            v["model"]["false_alarm_ratio"],
                            v["model"].get("csi", ""),
                            v["median_lead_min_model"],
                            v["persistence"]["hit_rate"],
                            v["persistence"]["false_alarm_ratio"],
                            v["persistence"].get("csi", ""),
                            v["median_lead_min_persistence"],
                        ]
                    )
            rows.append(
                [
                    lead,
                    "depth MAE (in)",
                    r["mae_in"]["model"],
                    "",
                    "",
                    "",
                    r["mae_in"]["persistence"],
                    "",
                    "",
                    "",
                ]
            )
        parts += [
            _table(
                rows,
                [
                    "lead (min)",
                    "target",
                    "hit rate",
                    "FAR",
                    "CSI",
                    "lead time (min)",
                    "persistence hit",
                    "persistence FAR",
                    "persistence CSI",
                    "persistence lead",
                ],
            ),
            "",
        ]
    nf = results.get("norfolk")
    if nf:
        t = nf["test"]
        parts += [
            "## Norfolk — 15-min rain → flooded-street reports",
            "",
            f"θ = {nf['chosen_threshold_in']} in / 15 min chosen on reports before {nf['split']}; after: hit rate {t['hit_rate']} ({t['clusters_warned']}/{t['report_clusters']} report clusters), false-alarm ratio {t['false_alarm_ratio']} over {t['alert_episodes']} alert episodes, median lead {t['median_lead_h']} h (horizon {nf['horizon_h']} h). {nf['note']}",  # noqa: E501 - report prose
            "",
        ]
    bk = results.get("bikes")
    if bk:
        parts += [
            "## Capital Bikeshare 2011 — storm-driven demand collapses",
            "",
            f"Alert days: {bk['alert_days']}; storms flagged: {bk['storms_flagged']}; days with heavy rain/snow flagged: {bk['of_which_flagged']}/{bk['days_with_heavy_rain_or_snow']}.",  # noqa: E501 - report prose
            "",
        ]
        if "bikes" in images:
            parts += [f"![bikes]({images['bikes']})", ""]
    ca = results.get("calit2")
    if ca:
        parts += [
            "## CalIt2 door counts — camera baseline (descriptive)",
            "",
            f"After {ca['learning_weeks']} weeks of learning, P(crowding) > 0.5 on "
            f"{ca['crowding_readings']} of {ca['readings']} half-hours "
            f"({ca['crowding_days']} days). "
            f"{ca['note']}.",
            "",
        ]
    st = results.get("storms")
    if st:
        parts += ["## Simulated storms — depth forecasts", ""]
        rows = []
        for name, r in st.items():
            if name.startswith("_"):
                continue
            for h in ("+15min", "+30min", "+60min"):
                if h not in r:
                    continue
                m = r[h]["mae_cm"]
                rows.append(
                    [
                        name,
                        h,
                        r["wet_samples"],
                        *(m.get(k, "") for k in ("persistence", "linear", "reservoir", "trained")),
                    ]
                )
        parts += [
            _table(
                rows,
                [
                    "run",
                    "horizon",
                    "wet samples",
                    "persistence MAE",
                    "linear MAE",
                    "reservoir MAE",
                    "trained MAE",
                ],
            ),
            "",
        ]
        rows = []
        for name, r in st.items():
            if name.startswith("_"):
                continue
            for h in ("+15min", "+30min", "+60min"):
                for k, v in r.get(h, {}).items():
                    if k.startswith("exceed_15cm"):
                        rows.append(
                            [
                                name,
                                h,
                                k.removeprefix("exceed_15cm_"),
                                v["hit_rate"],
                                v["false_alarm_ratio"],
                                v.get("csi", ""),
                                v["median_lead_min"],
                            ]
                        )
        parts += [
            "Exceedance of 15 cm (P ≥ 0.5):",
            "",
            _table(
                rows,
                ["run", "horizon", "forecaster", "hit rate", "FAR", "CSI", "median lead (min)"],
            ),
            "",
        ]
        if "reliability" in images:
            parts += [f"![reliability]({images['reliability']})", ""]
    vp = results.get("flood_vs_persistence")
    if vp:
        bad = [r for r in vp if not r["beats_persistence"]]
        verdict = (
            "Every horizon on every data set beats persistence."
            if not bad
            else f"{len(bad)} of {len(vp)} comparisons do not beat persistence."
        )
        parts += [
            "## Flood forecaster against persistence (the issue's target)",
            "",
            "Depth MAE per run and horizon (lower is better); critical success index "
            "(hits / (hits + misses + false alarms)) of exceedance warnings, pooled over the "
            "storm runs or the FloodNet test events (higher is better; no CSI = nothing "
            f"exceeded and no warning). **{verdict}**",
            "",
            _table(
                [
                    [
                        r["data"],
                        f"+{r['horizon_min']} min",
                        r["forecaster"],
                        r["measure"],
                        r["ours"],
                        r["persistence"],
                        "yes" if r["beats_persistence"] else "**no**",
                    ]
                    for r in vp
                ],
                ["data", "horizon", "forecaster", "measure", "ours", "persistence", "beats"],
            ),
            "",
        ]
    if results.get("not_done"):
        parts += ["## Not evaluated", ""] + [f"- {x}" for x in results["not_done"]] + [""]
    return "\n".join(parts)


def write_report(results: dict[str, Any], directory: Path) -> Path:
    images = plots(results, directory)
    path = directory / "report.md"
    path.write_text(markdown(results, images), encoding="utf-8")
    write_json(results, directory / "results.json")
    return path
