"""``run_bench``: readings per second of the models at batch sizes 1, 100 and 1,000.

Measured on one thread (BLAS/OpenMP pools limited to 1): QC + anomaly detection of water
readings, the flood forecaster (streaming state update + reservoir forecast, and the
trained forecaster when an artefact is given), the bike forecaster and the camera
baselines. Each case runs for at least ``min_seconds``; figures are readings/s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from models import bike_forecast, camera_baseline, detectors, flood_forecast, flood_state, qc

BATCHES = (1, 100, 1000)


def _timeit(fn: Callable[[int], None], batch: int, min_seconds: float) -> tuple[float, float]:
    """Readings per wall second and per CPU second of this thread (on a shared machine
    the second is the steadier measure of one core; pools are limited to one thread)."""
    fn(0)  # warm up
    n, i = 0, 1
    start, cpu_start = time.perf_counter(), time.thread_time()
    while True:
        fn(i)
        n += batch
        i += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            cpu = max(time.thread_time() - cpu_start, 1e-9)
            return n / elapsed, n / cpu


def _cases(batch: int, flood_model: Any) -> dict[str, Callable[[int], None]]:
    rng = np.random.default_rng(0)
    idx = np.arange(batch)
    t0 = 1_720_000_000.0
    vals = np.abs(rng.normal(2, 3, (64, batch)))
    box: dict[str, Any] = {
        "qc": qc.QcState.initial_arrays(batch),
        "det": detectors.DetectorState.initial_arrays(batch),
        "flood": flood_state.FloodState.initial_arrays(batch),
        "bike": bike_forecast.BikeState.initial_arrays(batch),
        "cam": camera_baseline.initial(batch),
    }
    qp, dp, bp, cp = (
        qc.QcParams(),
        detectors.DetectorParams(),
        bike_forecast.BikeParams(),
        camera_baseline.CameraParams(),
    )
    sites = flood_forecast.Sites.default(batch)

    def qc_det(i: int) -> None:
        ts = np.full(batch, t0 + 60.0 * i)
        v = vals[i % 64]
        box["qc"], q = qc.step_batch(box["qc"], idx, ts, v, qp)
        v = np.where(q["flag"] >= 4, np.nan, v)
        box["det"], _ = detectors.step_batch(box["det"], idx, ts, v, dp)

    def flood(i: int, model: Any = None) -> None:
        ts = np.full(batch, t0 + 60.0 * i)
        box["flood"], _ = flood_state.update_rain_batch(
            box["flood"], idx, ts, vals[i % 64] / 4, np.full(batch, np.nan)
        )
        box["flood"], _ = flood_state.update_depth_batch(box["flood"], idx, ts, vals[i % 64])
        flood_forecast.batch_forecast(box["flood"], sites, ts, model)

    def bike(i: int) -> None:
        ts = np.full(batch, t0 + 120.0 * i)
        box["bike"], _ = bike_forecast.step_batch(
            box["bike"], idx, ts, 10 * vals[i % 64], np.full(batch, 50.0), bp
        )

    def cam(i: int) -> None:
        ts = np.full(batch, t0 + 60.0 * i)
        counts = np.column_stack([vals[i % 64]] * 4)
        box["cam"], _ = camera_baseline.step_batch(box["cam"], idx, ts, counts, cp)

    cases: dict[str, Callable[[int], None]] = {
        "qc + detection (water)": qc_det,
        "flood update + reservoir forecast": flood,
        "bike forecast": bike,
        "camera baselines": cam,
    }
    if flood_model is not None:
        cases["flood update + trained forecast"] = lambda i: flood(i, flood_model)
    return cases


def run_bench(
    json_path: Path | None = None,
    min_seconds: float = 0.5,
    flood_model: Any = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Measure, print a rich table, optionally write JSON; returns the figures."""
    results: dict[str, dict[str, float]] = {}
    results_cpu: dict[str, dict[str, float]] = {}
    with threadpool_limits(limits=1):
        for batch in BATCHES:
            for name, fn in _cases(batch, flood_model).items():
                wall, cpu = _timeit(fn, batch, min_seconds)
                results.setdefault(name, {})[str(batch)] = round(wall, 1)
                results_cpu.setdefault(name, {})[str(batch)] = round(cpu, 1)
    table = Table(title="GridWatch models — readings/s on one thread: wall (per CPU second)")
    table.add_column("stage")
    for b in BATCHES:
        table.add_column(f"batch {b}", justify="right")
    for name, row in results.items():
        cpu_row = results_cpu[name]
        table.add_row(name, *(f"{row[str(b)]:,.0f} ({cpu_row[str(b)]:,.0f})" for b in BATCHES))
    (console or Console()).print(table)
    doc = {
        "unit": "readings/s",
        "threads": 1,
        "min_seconds": min_seconds,
        "results": results,
        "results_per_cpu_second": results_cpu,
    }
    if json_path is not None:
        json_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return doc
