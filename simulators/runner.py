"""Run a scenario end to end: messages to JSONL (and optionally a sink), truth, city.

The CLI and the tests share this shell around the pure engine. Pacing (``speed``)
sleeps in wall time between publish times; ``speed=None`` runs as fast as possible.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from gridwatch.contracts import Complaint
from simulators.complaints_out import ComplaintFeed
from simulators.engine import Simulation
from simulators.messages import Message
from simulators.output import RunSummary, write_jsonl, write_run_info
from simulators.scenario import Scenario
from simulators.truth import GroundTruth


@dataclass
class RunResult:
    summary: RunSummary
    truth: GroundTruth
    out_dir: Path
    wall_s: float
    cpu_s: float


def paced(
    messages: Iterator[Message], speed: float | None, *, clock: Callable[[], float] = time.monotonic
) -> Iterator[Message]:
    """Yield messages no faster than ``speed`` × event time (None: as fast as possible)."""
    if speed is None:
        yield from messages
        return
    t0_wall: float | None = None
    t0_event = 0
    for msg in messages:
        if t0_wall is None:
            t0_wall, t0_event = clock(), msg.at
        due = t0_wall + (msg.at - t0_event) / speed
        delay = due - clock()
        if delay > 0:
            time.sleep(delay)
        yield msg


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    *,
    start: datetime | None = None,
    speed: float | None = None,
    on_message: Callable[[Message], None] | None = None,
    progress: Callable[[int], None] | None = None,
    on_complaint: Callable[[Complaint], None] | None = None,
) -> RunResult:
    """Simulate ``scenario`` into ``out_dir`` (messages.jsonl, truth files, city/)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = Simulation(scenario, np.random.default_rng(scenario.seed), start)
    sim.city.write(out_dir / "city")
    wall0, cpu0 = time.monotonic(), time.process_time()
    counter = [0]
    last = [sim.start]
    feed = ComplaintFeed(sim.truth.complaints, on_complaint) if on_complaint else None

    def each(msg: Message) -> None:
        if feed is not None:
            feed.advance(msg.at)
        if on_message is not None:
            on_message(msg)
        counter[0] += 1
        # Report every 2,000 messages, or every event minute when the run is paced.
        if progress is not None and (counter[0] % 2000 == 0 or msg.at - last[0] >= 60):
            last[0] = msg.at
            progress(msg.at - sim.start)

    summary = write_jsonl(paced(sim.messages(), speed), out_dir / "messages.jsonl", on_message=each)
    if feed is not None:
        feed.finish()
    if progress is not None:
        progress(sim.run_s)
    sim.truth.write(out_dir)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    write_run_info(
        out_dir,
        {
            "scenario": scenario.model_dump(mode="json"),
            "start": sim.start,
            "seed": scenario.seed,
            "messages": summary.messages,
            "by_kind": dict(sorted(summary.by_kind.items())),
            "devices": len(sim.city.devices),
            "incidents": len(sim.truth.incidents),
            "complaints": len(sim.truth.complaints),
            "faults": len(sim.truth.faults),
        },
    )
    return RunResult(summary, sim.truth, out_dir, wall, cpu)
