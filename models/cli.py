"""``gridwatch models``: train and evaluate the detectors and forecasters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress

from models import (
    detectors,
    evaluate,
    evaluate_city,
    evaluate_flood,
    history,
    registry,
    report,
    storms,
    train,
)
from models import flood_forecast as ff
from models.errors import ModelError

app = typer.Typer(help="Train and evaluate the detectors and forecasters.", no_args_is_help=True)
console = Console()

DEFAULT_DATA = Path("../shared/data")
DEFAULT_ARTEFACTS = Path("var/models")
TRAIN_SEEDS = tuple(range(1, 9))
TEST_SEEDS = (101, 102, 103)

DataOpt = Annotated[Path, typer.Option(help="Folder of the shared real data sets.")]
ArtOpt = Annotated[Path, typer.Option(help="Where model artefacts live.")]
SimOpt = Annotated[
    list[Path] | None, typer.Option("--sim-run", help="Simulator run directory (repeatable).")
]


def _sim_datasets(runs: list[Path] | None) -> list[tuple[str, dict[str, np.ndarray], ff.Sites]]:
    out = []
    for d in runs or []:
        h = history.read_run(d)
        out.append((f"sim:{d.name}", storms.dataset(h.run, every_min=2, start_min=15), h.run.sites))
    return out


@app.command("train")
def train_cmd(
    artefacts: ArtOpt = DEFAULT_ARTEFACTS,
    sim_run: SimOpt = None,
    seeds: Annotated[int, typer.Option(help="Number of seeded storm runs to train on.")] = 6,
    sites: Annotated[int, typer.Option(help="Sites per storm run.")] = 40,
    minutes: Annotated[int, typer.Option(help="Minutes per storm run.")] = 2 * 1440,
    max_iter: Annotated[int, typer.Option(help="Boosting iterations per model.")] = 100,
    version: Annotated[str, typer.Option(help="Artefact version (default: UTC timestamp).")] = "",
) -> None:
    """Fit the flood forecaster on seeded storms (+ simulator runs) and save it with a card."""
    version = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    runs = [storms.simulate(s, n_sites=sites, minutes=minutes) for s in TRAIN_SEEDS[:seeds]]
    with Progress(console=console) as progress:
        task = progress.add_task("building features", total=len(runs) + len(sim_run or []))
        dsets, run_sites = [], []
        for r in runs:
            dsets.append(storms.dataset(r))
            run_sites.append(r.sites)
            progress.advance(task)
        for name, ds, s in _sim_datasets(sim_run):
            dsets.append(ds)
            run_sites.append(s)
            progress.advance(task)
            console.print(f"{name}: {ds['X'].shape[0]} samples")
        X, S, Y = train.pool(dsets, run_sites)
        fit_task = progress.add_task(
            "fitting quantile models", total=len(ff.HORIZONS_MIN) * len(ff.QUANTILES)
        )
        model = train.fit_flood(
            X,
            S,
            Y,
            max_iter=max_iter,
            version=f"hgb-{version}",
            progress=lambda: progress.advance(fit_task),
        )
    test = evaluate_flood.storm_datasets(TEST_SEEDS[:1], n_sites=sites, minutes=minutes)
    metrics = evaluate_flood.evaluate_storms(test, model)
    metrics = report.strip_plots(metrics)
    card = registry.ModelCard(
        name="flood",
        version=version,
        features=list(train.FLOOD_DESIGN),
        training_data_hash=registry.data_hash(X, Y),
        created_at=datetime.now(UTC).isoformat(),
        metrics=metrics,
        params={
            "max_iter": max_iter,
            "train_seeds": list(TRAIN_SEEDS[:seeds]),
            "sim_runs": [str(p) for p in sim_run or []],
            "samples": int(X.shape[0]),
        },
        notes="Quantile HGB on Δdepth + reservoir scenarios; CQR-widened q10/q90.",
    )
    path = registry.save(artefacts, model, card)
    det = registry.ModelCard(
        name="detector",
        version=version,
        features=["value", "ts"],
        training_data_hash="nab-dev-categories",
        created_at=card.created_at,
        params=detectors.DetectorParams().__dict__,
        notes="Threshold and rates tuned on the NAB development categories.",
    )
    registry.save(artefacts, detectors.DetectorParams(), det)
    console.print(f"saved {path}")
    console.print_json(
        json.dumps({k: v for k, v in metrics.items() if not k.startswith("_")}, default=float)
    )


@app.command("evaluate")
def evaluate_cmd(
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="Write report.md + PNGs here.")
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write every figure as JSON.")
    ] = None,
    data: DataOpt = DEFAULT_DATA,
    artefacts: ArtOpt = DEFAULT_ARTEFACTS,
    sim_run: SimOpt = None,
    storm_sites: Annotated[int, typer.Option(help="Sites per held-out storm run.")] = 40,
    storm_minutes: Annotated[int, typer.Option(help="Minutes per held-out storm run.")] = 2880,
    skip: Annotated[
        list[str] | None, typer.Option(help="Skip a section (nab, floodnet_raw, ...).")
    ] = None,
) -> None:
    """NAB, FloodNet, Norfolk, bikes and simulated storms; markdown + PNG + JSON."""
    results: dict[str, object] = {"not_done": []}
    not_done: list[str] = results["not_done"]  # type: ignore[assignment]
    steps = [
        ("nab", lambda: evaluate.evaluate_nab(data / "nab"), data / "nab"),
        (
            "floodnet_raw",
            lambda: evaluate.evaluate_floodnet_raw(data / "floodnet_nyc"),
            data / "floodnet_nyc" / "raw_uplinks",
        ),
        (
            "floodnet_profiles",
            lambda: evaluate_flood.evaluate_floodnet_profiles(
                data / "floodnet_nyc" / "flood_events.csv"
            ),
            data / "floodnet_nyc" / "flood_events.csv",
        ),
        (
            "norfolk",
            lambda: evaluate_city.evaluate_norfolk(data / "norfolk_flood"),
            data / "norfolk_flood",
        ),
        (
            "calit2",
            lambda: evaluate_city.evaluate_calit2(data / "people_counts_calit2"),
            data / "people_counts_calit2",
        ),
        (
            "bikes",
            lambda: evaluate_city.evaluate_bikes(
                data / "bike_capitalbikeshare_uci" / "hour_2011.csv"
            ),
            data / "bike_capitalbikeshare_uci",
        ),
    ]
    model, note = ff.load_forecaster(artefacts)
    console.print(f"flood forecaster: {note}")
    with Progress(console=console) as progress:
        task = progress.add_task("evaluating", total=len(steps) + 1)
        for name, fn, needed in steps:
            if name in (skip or []):
                not_done.append(f"{name}: skipped on request")
            elif needed.exists():
                try:
                    results[name] = fn()
                except (ModelError, OSError, ValueError, KeyError) as exc:
                    not_done.append(f"{name}: failed: {exc}")
            else:
                not_done.append(f"{name}: {needed} not found")
            progress.advance(task)
        sets = evaluate_flood.storm_datasets(TEST_SEEDS, storm_sites, storm_minutes)
        for run_dir in sim_run or []:
            try:
                sets += _sim_datasets([run_dir])
            except ModelError as exc:
                not_done.append(f"simulator run {run_dir}: {exc}")
        trained = model if not isinstance(model, ff.ReservoirForecaster) else None
        results["storms"] = evaluate_flood.evaluate_storms(sets, trained)
        results["flood_forecaster"] = note
        results["flood_vs_persistence"] = evaluate_flood.versus_persistence(results)
        progress.advance(task)
    if "bikes" in results:
        results["bikes"]["threshold"] = detectors.DetectorParams().threshold  # type: ignore[index]
    not_done.append(
        "CalIt2 people counts: no event labels in the repository (see SOURCE.md), so the "
        "camera baseline's crowding alerts there are descriptive only; incident probabilities "
        "are tested on synthetic weeks"
    )
    if trained is None:
        not_done.append(
            "trained flood forecaster: no compatible artefact (run `gridwatch models train`); "
            "storms scored with the physical default only"
        )
    if report_dir is not None:
        path = report.write_report(results, report_dir)
        console.print(f"report: {path}")
    if json_file is not None:
        report.write_json(results, json_file)
        console.print(f"json: {json_file}")
    if report_dir is None and json_file is None:
        console.print_json(json.dumps(report.strip_plots(results), default=float))


@app.command("bench")
def bench_cmd(
    json_file: Annotated[Path | None, typer.Option("--json")] = None,
    artefacts: ArtOpt = DEFAULT_ARTEFACTS,
) -> None:
    """Readings/s of QC + detection and forecasting at batch sizes 1, 100, 1,000."""
    from models.bench import run_bench

    model, _ = ff.load_forecaster(artefacts)
    run_bench(
        json_file,
        flood_model=None if isinstance(model, ff.ReservoirForecaster) else model,
        console=console,
    )


if __name__ == "__main__":
    app()
