"""``gridwatch bench [ingest|models|tickets|pipeline|all] [--json FILE]``.

Every benchmark prints a table and returns its figures; ``--json`` writes them with
the machine, library versions and configuration. Ingest and pipeline benchmarks run
on a private stack (free ports, temporary directory), never on the developer's.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import psutil
import typer
from rich.console import Console

from gridwatch.credentials import ensure_credentials
from gridwatch.errors import ConfigError
from gridwatch.settings import Settings, load_settings
from gridwatch.stack import Stack, free_port

if TYPE_CHECKING:
    from simulators.city import City

console = Console()
TARGETS = ("ingest", "models", "tickets", "pipeline")


@contextlib.contextmanager
def private_stack(city: City | None = None) -> Iterator[Settings]:
    """A throw-away Mosquitto + Kafka + InfluxDB on free ports; with ``city``, its
    registry is written first and its devices get their logins."""
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
        var = Path(tmp)
        ensure_credentials(var)
        settings = load_settings(
            stack={
                "var_dir": var,
                "influx_rpc_port": free_port(),
                "start_timeout_s": 60,
                "kafka_controller_ports": (free_port(),),
            },
            mqtt={"port": free_port()},
            kafka={"bootstrap": f"127.0.0.1:{free_port()}"},
            influx={"url": f"http://127.0.0.1:{free_port()}"},
            ingest={"rate_per_s": 1e6, "burst": 1e6},
            tickets={"db_url": f"sqlite:///{var}/tickets.db"},
            registry_dir=var / "city",
        )
        if city is not None:
            city.write(settings.registry_dir)
        stack = Stack(settings)
        try:
            stack.up(device_ids=list(city.registry().devices) if city else [])
            yield settings
        finally:
            stack.down()


@dataclass
class ProcessSampler:
    """CPU (% of one core) and peak RSS of some processes, sampled in a thread."""

    pids: dict[str, int]
    interval_s: float = 0.2
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_percent: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._procs = {name: psutil.Process(pid) for name, pid in self.pids.items()}
        self._stop = threading.Event()
        self._cpu0: dict[str, float] = {}
        self._t0 = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _cpu(self, proc: psutil.Process) -> float:
        """The process's own CPU seconds: not its children's (the benchmark process
        starts the stack and the workers, which are sampled by their own names)."""
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            return float(t.user + t.system)
        return 0.0

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in self._procs.items():
                with contextlib.suppress(psutil.Error):
                    rss = proc.memory_info().rss / 2**20
                    self.peak_rss_mb[name] = max(self.peak_rss_mb.get(name, 0.0), rss)
            time.sleep(self.interval_s)

    def __enter__(self) -> ProcessSampler:
        self._t0 = time.monotonic()
        self._cpu0 = {n: self._cpu(p) for n, p in self._procs.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.monotonic() - self._t0, 1e-9)
        for name, proc in self._procs.items():
            with contextlib.suppress(psutil.Error):
                self.cpu_percent[name] = 100 * (self._cpu(proc) - self._cpu0[name]) / wall
        self._stop.set()
        self._thread.join()


def percentiles(
    values: Sequence[float] | np.ndarray, qs: tuple[int, ...] = (50, 99)
) -> dict[str, float]:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return {f"p{q}": float("nan") for q in qs}
    return {f"p{q}": round(float(np.percentile(arr, q)), 1) for q in qs}


def environment(config: dict[str, Any] | None = None) -> dict[str, Any]:
    libs = {}
    for name in ("faust-streaming", "aiokafka", "paho-mqtt", "numpy", "scikit-learn", "sqlalchemy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            libs[name] = metadata.version(name)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": libs,
        "config": config or {},
    }


def bench(
    target: Annotated[str, typer.Argument(help=f"One of {', '.join(TARGETS)}, or all.")] = "all",
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the figures here.")
    ] = None,
    seconds: Annotated[float, typer.Option(help="Load duration per ingest/pipeline case.")] = 15.0,
    pack: Annotated[
        int,
        typer.Option(
            help="Readings per MQTT message in the pipeline load: each device sends its "
            "last N readings as one SenML pack (1: one JSON reading per message)."
        ),
    ] = 10,
) -> None:
    """Run the benchmarks and print their figures."""
    chosen = list(TARGETS) if target == "all" else [target]
    if any(t not in TARGETS for t in chosen):
        raise ConfigError(f"unknown benchmark {target!r}; choose {', '.join(TARGETS)} or all")
    if not 1 <= pack <= 60:
        raise ConfigError(f"--pack must be between 1 and 60 readings per message, got {pack}")
    results: dict[str, Any] = environment({"seconds": seconds, "pack": pack})
    for name in chosen:
        console.rule(f"bench {name}")
        if name == "models":
            from models import flood_forecast as ff
            from models.bench import run_bench as models_bench

            # the forecaster the stream workers load: the trained one where it exists
            model, note = ff.load_forecaster(load_settings().stack.var_dir / "models")
            console.print(f"flood forecaster: {note}")
            trained = None if isinstance(model, ff.ReservoirForecaster) else model
            results["models"] = models_bench(None, flood_model=trained, console=console)
        elif name == "tickets":
            from tickets.bench import run_bench as tickets_bench

            results["tickets"] = tickets_bench(None)
        elif name == "ingest":
            from ingest.bench import run_bench as ingest_bench

            results["ingest"] = ingest_bench(seconds=seconds, console=console)
        else:
            from streams.bench import run_bench as pipeline_bench

            results["pipeline"] = pipeline_bench(seconds=seconds, pack=pack, console=console)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
        console.print(f"figures written to {json_path}")
