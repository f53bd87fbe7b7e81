"""The scoreboard's report: markdown, PNG plots (matplotlib, Agg) and the JSON summary."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gridwatch.scoreboard import CategoryScore, Scoreboard, check_targets

if TYPE_CHECKING:
    from gridwatch.evaluate import ScenarioEvaluation

HIT = "pre-empted"
CATEGORY_COLOURS = {
    "waterlogging": "#1f77b4",
    "bike_overflow": "#ff7f0e",
    "street_vendor": "#2ca02c",
    "exposed_garbage": "#8c564b",
    "road_occupation": "#d62728",
    "crowding": "#9467bd",
}
MISSES = ("late", "retracted", "reactive", "missed")
COLOURS = {
    "pre-empted": "#2a9d8f",
    "late": "#f4a261",
    "retracted": "#e9c46a",
    "reactive": "#e76f51",
    "missed": "#9b2226",
}


def summary_doc(
    done: list[ScenarioEvaluation], *, command: str, generated_at: datetime
) -> dict[str, Any]:
    """Every figure of every scenario, as plain JSON."""
    scenarios = {}
    for ev in done:
        r = ev.result
        tl = ev.timeline
        scenarios[ev.scenario] = {
            "run": {
                "published": r.published,
                "seconds": round(r.seconds, 1),
                "points": r.points,
                "dead_letters": r.dead_letters,
                "tickets": len(r.tickets),
                "complaints": len(r.complaints),
                "incidents": len(r.incidents),
            },
            "scoreboard": ev.board.to_dict(),
            "timeline_incident": tl["incident"]["incident_key"] if tl else None,
            "plots": [f"{ev.scenario}/{name}" for name in PLOTS],
        }
    return {
        "generated_at": generated_at.astimezone(UTC).isoformat(timespec="seconds"),
        "command": command,
        "scenarios": scenarios,
    }


PLOTS = ("lead_times.png", "grid_map.png", "storm_timeline.png")


def write_report(done: list[ScenarioEvaluation], doc: dict[str, Any], out: Path) -> Path:
    parts = [
        "# 未诉先办 scoreboard",
        "",
        f"Generated {doc['generated_at']} by `{doc['command'] or 'gridwatch evaluate'}`. "
        "Definitions: `gridwatch/scoreboard.py` (module docstring).",
        "",
        _headline(done),
    ]
    for ev in done:
        d = out / ev.scenario
        d.mkdir(parents=True, exist_ok=True)
        lead_plot(ev, d / PLOTS[0])
        grid_map(ev, d / PLOTS[1])
        timeline_plot(ev, d / PLOTS[2])
        parts.append(scenario_markdown(ev))
    path = out / "report.md"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


# -- markdown ------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = "{:.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def _p(value: float | None) -> str:
    return _f(None if value is None else 100 * value, "{:.0f} %")


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def headline_rows(done: list[ScenarioEvaluation]) -> list[list[str]]:
    rows = []
    for ev in done:
        o, b = ev.board.overall, ev.board
        rows.append(
            [
                ev.scenario,
                f"{_p(o.preemption_rate)} ({o.preempted}/{o.complained})",
                _p(o.preemption_rate_seeing),
                _f(o.lead_complaint_min.median),
                _f(o.lead_worthy_min.median),
                f"{_p(o.precision)} ({o.true_tickets}/{o.proactive_tickets})",
                _p(o.precision_not_retracted),
                f"{_p(o.recall_worthy)} ({o.ticketed_worthy}/{o.worthy})",
                f"{b.duplicates} ({sum(o.duplicates_reactive for o in b.incidents)})",
                f"{b.faults.as_maintenance}/{b.faults.faults} · {b.faults.as_flood}",
            ]
        )
    return rows


HEADLINE = [
    "scenario",
    "pre-emption",
    "at working sensors",
    "median lead to call (min)",
    "median lead to worthy (min)",
    "precision",
    "not counting retracted pre-alerts",
    "recall (worthy)",
    "duplicates (of which calls' tickets)",
    "faults as maintenance · as flood",
]


def _headline(done: list[ScenarioEvaluation]) -> str:
    return _table(HEADLINE, headline_rows(done)) + (
        "\n\nTargets (issue 9): pre-emption ≥ 90 %, median lead before the first call ≥ 20 min, "
        "precision ≥ 90 %, 0 duplicate tickets.\n"
    )


def category_rows(board: Scoreboard) -> list[list[str]]:
    def row(c: CategoryScore) -> list[str]:
        lc, lw = c.lead_complaint_min, c.lead_worthy_min
        return [
            c.category,
            str(c.incidents),
            str(c.complained),
            f"{c.preempted} ({_p(c.preemption_rate)})",
            f"{c.blind_complained} · {_p(c.preemption_rate_seeing)}",
            f"{c.late} / {c.retracted_before_call} / {c.reactive_only} / {c.missed}",
            f"{_f(lc.median)} [{_f(lc.p10)}, {_f(lc.p90)}]",
            f"{_f(lw.median)} [{_f(lw.p10)}, {_f(lw.p90)}]",
            f"{c.true_tickets}/{c.proactive_tickets} ({_p(c.precision)}) · "
            f"{_p(c.precision_not_retracted)}",
            _f(c.false_per_grid_day, "{:.2f}"),
            f"{c.retracted} ({c.retracted_false} false)",
            f"{_p(c.recall_worthy)} · {_p(c.recall_all)}",
            f"{c.duplicates} ({c.duplicates_reactive}) · {c.reraised}",
        ]

    return [row(c) for c in board.categories.values()] + [row(board.overall)]


CATEGORY_HEAD = [
    "category",
    "incidents",
    "called about",
    "pre-empted",
    "at failed sensors · pre-emption elsewhere",
    "late / retracted / reactive / missed",
    "lead to call, median [p10, p90]",
    "lead to worthy, median [p10, p90]",
    "precision · not counting retracted",
    "false / grid / day",
    "retracted pre-alerts",
    "recall worthy · all",
    "duplicates (calls' tickets) · re-raised",
]


def scenario_markdown(ev: ScenarioEvaluation) -> str:
    b, r = ev.board, ev.result
    targets = [
        [t.name, f"{t.op} {t.target:g}", _f(t.actual, "{:.3g}"), "yes" if t.met else "**no**"]
        for t in check_targets(b)
    ]
    faults = [
        [f.kind, f.fault, str(f.faults), str(f.as_maintenance), str(f.as_flood)]
        for f in b.faults.rows
    ]
    misses = [o for o in b.incidents if o.complained and o.outcome != HIT]
    miss_rows = [
        [
            o.incident_key,
            o.outcome,
            _f(o.late_min),
            "yes" if o.blind else "",
            o.first_complaint_at.strftime("%H:%M") if o.first_complaint_at else "",
        ]
        for o in sorted(misses, key=lambda o: (o.category, o.outcome, o.incident_key))
    ]
    false = [t for t in b.tickets if t.incident_id is None]
    by_cat = Counter(t.category for t in false)
    false_rows = [
        [t.incident_key, t.state, _f(t.next_incident_min), t.why[:90]] for t in false[:25]
    ]
    flooded = [t for t in false if t.next_incident_min is not None]
    dead = ", ".join(f"{k}: {v}" for k, v in sorted(r.dead_letters.items())) or "none"
    return "\n".join(
        [
            f"\n## {ev.scenario}\n",
            f"{r.published:,} device messages in {r.seconds:.0f} s; {len(r.tickets)} tickets, "
            f"{len(r.complaints)} complaints filed, {len(r.incidents)} ground-truth incidents "
            f"({b.grids} grids, {b.days * 24:.1f} event hours); dead-lettered: {dead}. "
            f"Of {b.calls_filed} calls filed, the store linked {b.calls_pre_empted_in_store} "
            "to a proactive ticket (the calls go in after the readings, so a ticket that had "
            "already closed in event time no longer takes its calls: see duplicates).\n",
            _table(["target", "wanted", "actual", "met"], targets),
            "",
            _table(CATEGORY_HEAD, category_rows(b)),
            "",
            "Device faults (every lasting fault of the truth):\n",
            _table(["kind", "fault", "faults", "device_fault ticket", "raised as a flood"], faults)
            + f"\n\n{b.faults.maintenance_tickets} device_fault tickets, "
            f"{b.faults.maintenance_false} about no injected lasting fault, "
            f"{b.faults.maintenance_reraised} raised again for a fault already ticketed "
            "(the ticket cleared and came back: flapping).\n",
            f"Incidents called about without a ticket before the first call ({len(misses)}):\n",
            _table(
                ["incident", "outcome", "ticket late by (min)", "sensor failed", "first call"],
                miss_rows,
            )
            if miss_rows
            else "none",
            "",
            f"False proactive tickets ({len(false)}: "
            + (", ".join(f"{k} {v}" for k, v in sorted(by_cat.items())) or "none")
            + (", first 25" if len(false) > 25 else "")
            + "):\n",
            (
                f"{len(flooded)} of them at sites whose incident came later (median "
                f"{_f(statistics.median([t.next_incident_min or 0.0 for t in flooded]))} min "
                "after the ticket).\n\n"
                if flooded
                else ""
            )
            + (
                _table(["incident key", "state", "incident there after (min)", "why"], false_rows)
                if false_rows
                else "none"
            ),
            "",
            f"![lead times]({ev.scenario}/{PLOTS[0]})\n",
            f"![grid map]({ev.scenario}/{PLOTS[1]})\n",
            f"![storm timeline]({ev.scenario}/{PLOTS[2]})",
        ]
    )


# -- plots ---------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def lead_plot(ev: ScenarioEvaluation, path: Path) -> None:
    """Histogram of lead times: before the first call, and before complaint-worthiness."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, attr, title in (
        (axes[0], "lead_complaint_min", "ticket → first 12345 call"),
        (axes[1], "lead_worthy_min", "ticket → complaint-worthy (negative: after)"),
    ):
        per: dict[str, list[float]] = defaultdict(list)
        for o in ev.board.incidents:
            value = getattr(o, attr)
            if value is not None and o.category != "device_fault":
                per[o.category].append(value)
        values = [v for vs in per.values() for v in vs]
        if values:
            lo, hi = math.floor(min(values) / 5) * 5, math.ceil(max(values) / 5) * 5 + 5
            cats = sorted(per)
            ax.hist(
                [per[c] for c in cats],
                bins=list(range(lo, hi + 1, 5)),
                stacked=True,
                label=cats,
                color=[CATEGORY_COLOURS.get(c, "grey") for c in cats],
            )
            median = statistics.median(values)
            ax.axvline(median, color="k", ls="--", lw=1, label=f"median ≈ {median:.0f} min")
            if attr == "lead_complaint_min":
                ax.axvline(20, color="r", ls=":", lw=1, label="target 20 min")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no lead times", ha="center", transform=ax.transAxes)
        ax.set_xlabel("minutes")
        ax.set_ylabel("incidents")
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"{ev.scenario}: lead times of proactive tickets")
    _save(fig, path)


def grid_map(ev: ScenarioEvaluation, path: Path) -> None:
    """Grids coloured by hits and misses; incidents called about; false tickets."""
    reg, board = ev.registry, ev.board
    called = [o for o in board.incidents if o.complained and o.category != "device_fault"]
    hits: Counter[str] = Counter(o.grid_id for o in called if o.outcome == HIT)
    misses: Counter[str] = Counter(o.grid_id for o in called if o.outcome != HIT)
    false = [t for t in board.tickets if t.incident_id is None and t.category != "device_fault"]
    fig, ax = plt.subplots(figsize=(8, 8))
    for gid, info in reg.grids.items():
        if info.level != "grid":
            continue
        geom = reg.geometry[gid]
        total = hits[gid] + misses[gid]
        if total:
            share = hits[gid] / total
            fill = (1 - share * 0.8, 0.35 + share * 0.5, 0.35, 0.45)
        else:
            fill = (0.92, 0.92, 0.92, 1.0)
        for poly in getattr(geom, "geoms", [geom]):
            x, y = poly.exterior.xy
            ax.fill(x, y, color=fill, ec="white", lw=0.8)
    for outcome, colour in COLOURS.items():
        pts = [o for o in called if o.outcome == outcome]
        if pts:
            ax.scatter(
                [o.lon for o in pts],
                [o.lat for o in pts],
                s=22,
                c=colour,
                edgecolors="k",
                linewidths=0.4,
                label=f"{outcome} ({len(pts)})",
                marker="o" if outcome == HIT else "X",
            )
    xs, ys = [], []
    for t in false:
        dev = (t.incident_key.split(":", 2)[-1]).removeprefix("site-")
        p = reg.devices.get(dev)
        if p is not None:
            xs.append(p.device.lon)
            ys.append(p.device.lat)
    if xs:
        ax.scatter(xs, ys, marker="+", c="k", s=40, label=f"false ticket ({len(false)})")
    ax.set_aspect(1.2)
    ax.ticklabel_format(useOffset=False)
    ax.tick_params(axis="x", labelrotation=30)
    ax.set_xlabel("lon")
    ax.set_ylabel("lat")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    ax.set_title(
        f"{ev.scenario}: incidents residents called about, per grid "
        "(green: all pre-empted, red: all missed)",
        fontsize=10,
    )
    _save(fig, path)


def _t(ms: Any) -> datetime:
    return datetime.fromtimestamp(float(ms) / 1000.0, tz=UTC)


def timeline_plot(ev: ScenarioEvaluation, path: Path) -> None:
    """One flood: rain at the nearest gauge, depth, the +30 min forecast, tickets, calls."""
    tl = ev.timeline
    fig, (top, ax) = plt.subplots(
        2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2.5]}
    )
    if not tl:
        ax.text(0.5, 0.5, "no flood incident in this scenario", ha="center", transform=ax.transAxes)
        _save(fig, path)
        return
    inc = tl["incident"]
    rain = [r for r in tl["rain"] if r.get("intensity_mm_h") is not None]
    if rain:
        values = sorted(r["intensity_mm_h"] for r in rain)
        top.plot([_t(r["time"]) for r in rain], [r["intensity_mm_h"] for r in rain])
        # a gauge's spike (a fault of its own) would flatten the storm: clip the axis
        top.set_ylim(0, 1.3 * values[int(0.99 * (len(values) - 1))] + 1)
    top.set_ylabel("rain mm/h")
    top.set_title(f"rain at gauge {tl['gauge']}", fontsize=9)
    depth = tl["depth"]
    ax.plot([_t(r["time"]) for r in depth], [r["level_cm"] for r in depth], label="depth (cm)")
    h = tl["horizon_min"]
    fc = [r for r in tl["forecast"] if r.get(f"f{h}_q50") is not None]
    if fc:
        shift = h * 60_000
        ts = [_t(r["time"] + shift) for r in fc]
        ax.plot(ts, [r[f"f{h}_q50"] for r in fc], label=f"forecast made {h} min earlier (q50)")
        if all(r.get(f"f{h}_q10") is not None and r.get(f"f{h}_q90") is not None for r in fc):
            ax.fill_between(
                ts, [r[f"f{h}_q10"] for r in fc], [r[f"f{h}_q90"] for r in fc], alpha=0.2
            )
    ax.axhline(15, color="grey", ls=":", lw=1, label="15 cm: worth a call")
    marks = [
        (inc.get("complaint_worthy_at"), "purple", "complaint-worthy"),
    ]
    for t in tl["tickets"]:
        marks.append((t["time"], "green", f"ticket {t['event']} → {t['state']}"))
    for c in tl["calls"]:
        marks.append((c, "red", "12345 call"))
    seen: set[str] = set()
    for when, colour, label in marks:
        if when is None:
            continue
        at = _t(when) if isinstance(when, int | float) else datetime.fromisoformat(when)
        ax.axvline(at, color=colour, lw=1, ls="--", label=None if label in seen else label)
        seen.add(label)
    ax.set_ylabel("cm")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.set_title(f"{inc['incident_key']} (peak {inc['peak']} cm)", fontsize=9)
    fig.suptitle(f"{ev.scenario}: one flood, from InfluxDB")
    _save(fig, path)
