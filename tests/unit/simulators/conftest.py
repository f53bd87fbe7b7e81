"""Shared, cached simulation runs for the simulator tests (kept short: seconds each)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulators.engine import Simulation
from simulators.messages import Message
from simulators.scenario import Scenario, load_scenario


def run(scenario: Scenario) -> tuple[Simulation, list[Message]]:
    sim = Simulation(scenario, np.random.default_rng(scenario.seed))
    return sim, list(sim.messages())


@pytest.fixture(scope="session")
def storm_run() -> tuple[Simulation, list[Message]]:
    """The 50-year rainstorm, small city, 2 hours."""
    return run(load_scenario("rainstorm-50y").with_overrides(duration="2h"))


@pytest.fixture(scope="session")
def typhoon_run() -> tuple[Simulation, list[Message]]:
    return run(load_scenario("typhoon").with_overrides(duration="150min"))


@pytest.fixture(scope="session")
def event_run() -> tuple[Simulation, list[Message]]:
    return run(load_scenario("rush-hour-event").with_overrides(duration="150min"))


@pytest.fixture
def scenario_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "simulators" / "scenarios"
