"""The worker-restart drill on the real stack: a stream worker stopped and started
again mid-storm, on its local state and then with it deleted, recovers every table from
its changelog and loses or doubles nothing (see ``gridwatch.drills.recovery``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gridwatch.drills import DrillResult

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_worker_restarted_on_its_changelog_recovers_and_loses_nothing(
    run_drill: Callable[[str], DrillResult],
) -> None:
    r = run_drill("worker-restart")
    assert r.passed, r.failures
    assert r.figures["water_missing"] == 0 and r.figures["water_published"] > 1000
    rebuilt = r.figures["state_deleted"]
    assert rebuilt["slots_deleted"] > 0 and rebuilt["recovery_errors"] == 0
    # every table of a kind the storm publishes (it has no status device) read back
    replayed = {table for table, n in rebuilt["replayed"].items() if n > 0}
    assert replayed >= {"water_sites", "rain_gauges", "bike_devices", "camera_devices"}
    assert "camera_slots" in replayed
