"""Generator throughput: readings per CPU second, to memory and to JSONL."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulators.engine import Simulation
from simulators.output import write_jsonl
from simulators.scenario import Scenario


@dataclass(frozen=True)
class Throughput:
    scenario: str
    size: str
    devices: int
    readings: int
    generate_per_s: float  # readings per CPU second, generator only
    jsonl_per_s: float  # readings per CPU second, generator + JSONL writer
    jsonl_mb: float


def measure(sc: Scenario) -> Throughput:
    """Run ``sc`` twice on this core: once only generating, once writing JSONL."""
    sim = Simulation(sc, np.random.default_rng(sc.seed))
    cpu0 = time.process_time()
    n = sum(1 for _ in sim.messages())
    gen_cpu = time.process_time() - cpu0
    sim = Simulation(sc, np.random.default_rng(sc.seed))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        cpu0 = time.process_time()
        summary = write_jsonl(sim.messages(), path)
        jsonl_cpu = time.process_time() - cpu0
        size_mb = path.stat().st_size / 1e6
    return Throughput(
        sc.name,
        sc.city.size,
        len(sim.city.devices),
        n,
        n / max(gen_cpu, 1e-9),
        summary.messages / max(jsonl_cpu, 1e-9),
        size_mb,
    )
