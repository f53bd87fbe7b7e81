"""Fault drills: kill or disturb one real component mid-run and check what must hold.

Each drill is a function ``drill(ctx) -> DrillResult`` registered under a name. It runs
on a real stack (``DrillContext.stack``) with settings isolated from every other run
(own topic prefix, consumer group, InfluxDB database, ticket store, registry), states
what must hold (``holds``), measures it (``figures``) and fails when a count is off.
``gridwatch drill`` and ``tests/drills`` call the same functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from gridwatch.errors import GridWatchError
from gridwatch.isolation import isolated
from gridwatch.settings import Settings
from gridwatch.stack import Stack


class DrillError(GridWatchError):
    """A drill cannot be set up or is unknown."""


class DrillResult(BaseModel):
    """What one drill required, whether it held, and what was measured."""

    name: str
    holds: str
    passed: bool
    figures: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0
    failures: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class DrillContext:
    stack: Stack
    settings: Settings  # isolated: see ``isolated_run``
    work_dir: Path


DrillFn = Callable[[DrillContext], DrillResult]


@dataclass(frozen=True)
class Drill:
    name: str
    summary: str
    fn: DrillFn


REGISTRY: dict[str, Drill] = {}


def drill(name: str, summary: str) -> Callable[[DrillFn], DrillFn]:
    """Register ``fn`` as drill ``name``."""

    def register(fn: DrillFn) -> DrillFn:
        REGISTRY[name] = Drill(name, summary, fn)
        return fn

    return register


def registry() -> dict[str, Drill]:
    """Every drill, in the order they run for ``all`` (modules imported on first use)."""
    from gridwatch.drills import pipeline, recovery, failover, tickets, abuse  # noqa: F401, I001  (they register, in this order)

    return REGISTRY


def isolated_run(base: Settings, work_dir: Path) -> Settings:
    """``base`` isolated (``gridwatch.isolation``) with a SQLite ticket store and a
    registry under ``work_dir``: a drill never sees another run's data."""
    work_dir.mkdir(parents=True, exist_ok=True)
    return isolated(
        base,
        tickets=base.tickets.model_copy(update={"db_url": f"sqlite:///{work_dir / 'tickets.db'}"}),
        registry_dir=work_dir / "city",
    )


def run_one(name: str, stack: Stack, work_dir: Path) -> DrillResult:
    """Run drill ``name`` on ``stack`` with fresh isolated settings under ``work_dir``.

    A drill that raises (a timeout, a child that died) is reported as failed with the
    error, not propagated: the other drills still run.
    """
    drills = registry()
    if name not in drills:
        raise DrillError(f"unknown drill {name!r}; choose one of: {', '.join(drills)}, all")
    started = time.monotonic()
    ctx = DrillContext(stack, isolated_run(stack.settings, work_dir), work_dir)
    try:
        result = drills[name].fn(ctx)
    except Exception as exc:  # reported as a failed drill with its error
        result = DrillResult(
            name=name,
            holds=drills[name].summary,
            passed=False,
            failures=[f"{type(exc).__name__}: {exc}"[:500]],
        )
    result.holds = result.holds or drills[name].summary
    result.seconds = round(time.monotonic() - started, 1)
    return result


class Checks:
    """Collects the conditions a drill requires; ``passed`` only when all held."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def require(self, ok: bool, what: str) -> bool:
        if not ok:
            self.failures.append(what)
        return ok

    def result(self, name: str, holds: str, figures: dict[str, Any]) -> DrillResult:
        return DrillResult(
            name=name,
            holds=holds,
            passed=not self.failures,
            figures=figures,
            failures=list(self.failures),
        )
