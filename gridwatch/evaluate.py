"""``gridwatch evaluate``: the 未诉先办 scoreboard of whole scenarios on the real stack.

Each scenario runs through the full local pipeline in event time as fast as the stack
takes it (``gridwatch.demo.run_demo``: bridge, stream worker, relay, complaints), one
after the other, the stack reset before each. Its tickets are then matched to the
simulator's ground truth (``gridwatch.scoreboard``, pure) and the figures written as a
markdown report with PNG plots and a JSON summary (``gridwatch.evaluate_report``).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from gridwatch.demo import DemoResult, console, run_demo
from gridwatch.errors import ConfigError
from gridwatch.influx import query, rows
from gridwatch.registry import Registry
from gridwatch.scoreboard import Scoreboard, check_targets, score_run
from gridwatch.settings import Settings
from simulators.scenario import Scenario

HORIZON_MIN = 30  # the forecast horizon that drives pre-alerts (streams/water_scoring.py)


@dataclass
class ScenarioEvaluation:
    scenario: str
    result: DemoResult
    board: Scoreboard
    registry: Registry
    timeline: dict[str, Any]


def evaluate_scenarios(
    settings: Settings,
    scenarios: list[Scenario],
    report_dir: Path,
    json_path: Path | None = None,
    *,
    manage_stack: bool = True,
    timeout_s: float = 600.0,
    command: str = "",
) -> dict[str, Any]:
    """Run, score and report every scenario; returns the JSON summary written."""
    from gridwatch.evaluate_report import summary_doc, write_report

    if not manage_stack and len(scenarios) > 1:
        raise ConfigError("without a managed stack, evaluate one scenario at a time")
    writable(report_dir)
    json_path = json_path or report_dir / "summary.json"
    writable(json_path.parent)
    done: list[ScenarioEvaluation] = []
    for n, sc in enumerate(scenarios, start=1):
        console.rule(f"[{n}/{len(scenarios)}] {sc.name}: {sc.description or ''}".rstrip(": "))
        out_dir = None if manage_stack else report_dir / sc.name / "run"
        result = run_demo(
            settings, sc, manage_stack=manage_stack, out_dir=out_dir, timeout_s=timeout_s
        )
        with console.status(f"scoring {sc.name} against its ground truth…"):
            done.append(score_scenario(settings, sc, result))
        board = done[-1].board
        console.print(
            f"{sc.name}: pre-emption {_pct(board.overall.preemption_rate)}, "
            f"precision {_pct(board.overall.precision)}, duplicates {board.duplicates}"
        )
    with console.status("writing the report and plots…"):
        doc = summary_doc(done, command=command, generated_at=datetime.now(UTC))
        report = write_report(done, doc, report_dir)
        json_path.write_text(
            json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    console.print(f"report: {report}\nJSON summary: {json_path}")
    return doc


def score_scenario(settings: Settings, sc: Scenario, result: DemoResult) -> ScenarioEvaluation:
    """Score one finished run (its stack still holds its data)."""
    registry = Registry.from_dir(result.out_dir / "city")
    grids = sum(1 for g in registry.grids.values() if g.level == "grid")
    kinds = {d: p.device.kind for d, p in registry.devices.items()}
    board = score_run(
        result.tickets,
        result.incidents,
        result.complaints,
        grids=grids,
        duration_s=sc.duration,
        device_kinds=kinds,
    )
    timeline = storm_timeline(settings, result, registry)
    return ScenarioEvaluation(sc.name, result, board, registry, timeline)


# -- one storm's timeline, from InfluxDB -------------------------------------------------


def pick_flood(incidents: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The flood incident to draw: the deepest one residents called about."""
    floods = [i for i in incidents if i["category"] == "waterlogging"]
    called = [i for i in floods if i["first_complaint_at"]] or floods
    return max(called, key=lambda i: (i["peak"], i["incident_id"]), default=None)


def storm_timeline(settings: Settings, result: DemoResult, registry: Registry) -> dict[str, Any]:
    """Rain, depth, forecast, ticket events and calls around one flood incident."""
    inc = pick_flood(result.incidents)
    if inc is None:
        return {}
    device = str(inc["site"]).removeprefix("site-")
    gauge = _nearest(registry, "rain", float(inc["lon"]), float(inc["lat"]))
    fields = _forecast_fields(settings)
    key = str(inc["incident_key"])
    forecast = (
        _series(settings, f"SELECT {fields} FROM assessment WHERE device = '{device}'")
        if fields
        else []
    )
    calls = _call_times(result.out_dir, set(inc["complaint_ids"]))
    return {
        "incident": inc,
        "device": device,
        "gauge": gauge,
        "horizon_min": HORIZON_MIN,
        "depth": _series(settings, f"SELECT level_cm FROM water WHERE device = '{device}'"),
        "rain": _series(settings, f"SELECT intensity_mm_h FROM rain WHERE device = '{gauge}'")
        if gauge
        else [],
        "forecast": forecast,
        "tickets": _series(
            settings,
            f"SELECT ticket_id, state, \"event\" FROM ticket WHERE incident = '{_quote(key)}'",
        ),
        "calls": calls,
    }


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _series(settings: Settings, q: str) -> list[dict[str, Any]]:
    return rows(asyncio.run(query(settings.influx, q)))


def _forecast_fields(settings: Settings) -> str:
    found = _series(settings, "SHOW FIELD KEYS FROM assessment")
    names = {str(r["fieldKey"]) for r in found}
    wanted = [f"f{HORIZON_MIN}_q10", f"f{HORIZON_MIN}_q50", f"f{HORIZON_MIN}_q90"]
    return ", ".join(f'"{n}"' for n in wanted if n in names)


def _nearest(registry: Registry, kind: str, lon: float, lat: float) -> str | None:
    best, dist = None, math.inf
    for p in registry.devices_of(kind):
        d = (p.device.lon - lon) ** 2 + ((p.device.lat - lat) * 1.2) ** 2
        if d < dist:
            best, dist = p.device.device_id, d
    return best


def _call_times(out_dir: Path, ids: set[str]) -> list[str]:
    path = out_dir / "complaints.jsonl"
    if not ids or not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            doc = json.loads(line)
            if doc["complaint_id"] in ids:
                out.append(str(doc["ts"]))
    return sorted(out)


# -- the command -------------------------------------------------------------------------


def writable(directory: Path) -> None:
    """Create ``directory`` and prove a file can be written there (else ConfigError)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".gridwatch-write-test"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to {directory}: {exc.strerror or exc}") from exc


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def evaluate(
    scenarios: Annotated[
        list[str], typer.Argument(help="Shipped scenario names (rainstorm-50y, …) or YAML files.")
    ],
    report: Annotated[
        Path | None, typer.Option(help="Report directory (default var/evaluate).")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="JSON summary (default REPORT/summary.json).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the pipeline to catch up, per stage.")
    ] = 600.0,
) -> None:
    """Score proactive tickets against the ground truth of whole scenarios (未诉先办)."""
    from gridwatch.cli import State
    from gridwatch.credentials import ensure_credentials
    from gridwatch.settings import load_settings
    from simulators.scenario import load_scenario

    loaded = [load_scenario(s) for s in scenarios]  # a bad name fails before anything runs
    base = load_settings(State.config)
    report_dir = report or base.stack.var_dir / "evaluate"
    writable(report_dir)
    if json_out is not None:
        writable(json_out.parent)
    ensure_credentials(base.stack.var_dir)
    settings = load_settings(State.config)
    doc = evaluate_scenarios(
        settings,
        loaded,
        report_dir,
        json_out,
        timeout_s=timeout,
        command="gridwatch " + " ".join(sys.argv[1:]),
    )
    for name, sc in doc["scenarios"].items():
        missed = [t["name"] for t in sc["scoreboard"]["targets"] if not t["met"]]
        console.print(f"{name}: targets missed: {', '.join(missed) or 'none'}")
    console.print("The stack keeps running: `gridwatch stack status`, `gridwatch stack down`.")


__all__ = ["ScenarioEvaluation", "check_targets", "evaluate", "evaluate_scenarios"]
