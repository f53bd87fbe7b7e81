"""E2E fixtures: the session stack's isolated settings plus a private ticket store and
registry directory per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch.demo import DemoResult
from gridwatch.settings import Settings


@pytest.fixture
def e2e_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "tickets": settings.tickets.model_copy(
                update={"db_url": f"sqlite:///{tmp_path}/tickets.db"}
            ),
            "registry_dir": tmp_path / "city",
        }
    )


def blind_sites(result: DemoResult) -> set[str]:
    """Sites whose only water sensor went blind (dead battery, dropout, stuck) during the
    run: their floods cannot be seen by their own readings and are judged apart."""
    return {
        f"site-{f['device_id']}"
        for f in result.faults
        if f["fault"] in ("battery_death", "dropout", "stuck") and f["kind"] == "water"
    }
