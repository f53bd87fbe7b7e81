"""Drill fixtures: each drill runs on the session stack through ``run_one`` (fresh isolated
settings under ``tmp_path``), exactly as ``gridwatch drill`` runs it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gridwatch.drills import DrillResult, run_one
from gridwatch.stack import Stack


@pytest.fixture
def run_drill(stack: Stack, tmp_path: Path) -> Callable[[str], DrillResult]:
    def run(name: str) -> DrillResult:
        result = run_one(name, stack, tmp_path / name)
        print(result.model_dump_json(indent=2))  # the figures, in the test log
        return result

    return run
