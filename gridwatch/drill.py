"""``gridwatch drill NAME|all [--json FILE]``: fault drills on the local real stack.

Brings the local stack up (idempotent), runs each drill with settings isolated from the
demo's data (own topics, consumer group, InfluxDB database, ticket store under
``var/drills/<name>``), prints what each must hold and what it measured, and exits 1
when any drill failed. The same functions run in CI from ``tests/drills``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gridwatch.drills import DrillError, DrillResult, registry, run_one

console = Console()


def drill(
    name: Annotated[str, typer.Argument(help="Drill name, or 'all'.")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every result to this JSON file.")
    ] = None,
) -> None:
    """Kill, restart, slow down or skew one real component mid-run; check what must hold."""
    from gridwatch.cli import settings
    from gridwatch.credentials import ensure_credentials
    from gridwatch.registry import Registry
    from gridwatch.settings import load_settings
    from gridwatch.stack import Stack

    drills = registry()
    names = list(drills) if name == "all" else [name]
    unknown = [n for n in names if n not in drills]
    if unknown:
        raise DrillError(f"unknown drill {unknown[0]!r}; choose one of: {', '.join(drills)}, all")
    base = settings()
    ensure_credentials(base.stack.var_dir)
    from gridwatch.cli import State

    s = load_settings(State.config)  # again: now with the generated credentials
    stack = Stack(s)
    devices: list[str] = []
    if (s.registry_dir / "devices.json").is_file():
        devices = list(Registry.from_dir(s.registry_dir).devices)
    with console.status("starting Mosquitto, Kafka and InfluxDB…"):
        stack.up(device_ids=devices)
    results: list[DrillResult] = []
    root = s.stack.var_dir / "drills"
    for n in names:
        console.rule(f"drill {n}")
        console.print(drills[n].summary, style="dim")
        work = root / n
        shutil.rmtree(work, ignore_errors=True)
        result = run_one(n, stack, work)
        results.append(result)
        print_result(result)
        if json_out is not None:  # written after each drill: a long run leaves partial results
            write_json(json_out, results)
    print_summary(results)
    if not all(r.passed for r in results):
        raise typer.Exit(1)


def print_result(result: DrillResult) -> None:
    table = Table(title=f"{result.name}: {'passed' if result.passed else 'FAILED'}")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    for key, value in result.figures.items():
        text = _fmt(value)
        table.add_row(key, text if len(text) <= 300 else "(nested: see --json)")
    table.add_row("seconds", f"{result.seconds:.1f}")
    console.print(table)
    for failure in result.failures:
        console.print(f"[bold red]✗[/] {failure}", highlight=False)


def print_summary(results: list[DrillResult]) -> None:
    table = Table(title="Fault drills")
    for col in ("drill", "passed", "seconds", "key figures"):
        table.add_column(col, overflow="fold")
    for r in results:
        key = ", ".join(f"{k}={_fmt(r.figures[k])}" for k in _key_figures(r)[:6])
        table.add_row(r.name, "yes" if r.passed else "[red]NO[/]", f"{r.seconds:.0f}", key)
    console.print(table)


# Figures every pipeline drill reports; the summary shows each drill's own first.
_COMMON = {
    "published_messages",
    "water_published",
    "water_in_kafka",
    "kafka_repeats",
    "water_in_influx",
    "water_extra",
    "tickets",
    "duplicate_tickets",
    "sink_p99_ms_max",
}


def _key_figures(result: DrillResult) -> list[str]:
    scalar = [k for k, v in result.figures.items() if not isinstance(v, dict | list)]
    return [k for k in scalar if k not in _COMMON] + [k for k in scalar if k in _COMMON]


def write_json(path: Path, results: list[DrillResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"drills": [r.model_dump(mode="json") for r in results]}
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in sorted(value.items())) or "-"
    return str(value)
