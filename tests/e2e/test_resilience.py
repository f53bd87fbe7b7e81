"""Two stream workers on the whole pipeline raise the tickets one worker raises.

The fault drills that used to live here (a worker killed mid-storm, InfluxDB down for a
while) are ``gridwatch drill worker-kill`` / ``influx-outage``, tested in ``tests/drills``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gridwatch.demo import DemoResult, run_demo
from gridwatch.settings import Settings
from simulators.scenario import load_scenario
from tests.e2e.conftest import blind_sites

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def storm(settings: Settings, tmp_path: Path, **kwargs: object) -> DemoResult:
    sc = load_scenario("rainstorm-50y").with_overrides(duration="80min", max_devices=200)
    return run_demo(
        settings, sc, manage_stack=False, out_dir=tmp_path / "run", timeout_s=300, **kwargs
    )  # type: ignore[arg-type]


def assert_no_double_tickets(result: DemoResult) -> None:
    keys = Counter((t["incident_key"], t["created_at"]) for t in result.tickets)
    assert max(keys.values(), default=1) == 1, [k for k, n in keys.items() if n > 1]


def test_two_workers_raise_the_same_tickets_as_one(
    e2e_settings: Settings, settings: Settings, tmp_path: Path
) -> None:
    one = storm(e2e_settings, tmp_path / "one")
    # a second, isolated run of the same scenario with two workers sharing partitions
    tag = "two" + e2e_settings.kafka.topic_prefix
    two_settings = e2e_settings.model_copy(
        update={
            "kafka": e2e_settings.kafka.model_copy(
                update={"topic_prefix": tag, "streams_group": f"{tag}-streams"}
            ),
            "mqtt": e2e_settings.mqtt.model_copy(
                update={"client_id": f"{tag}-bridge", "share_group": tag}
            ),
            "tickets": e2e_settings.tickets.model_copy(
                update={"db_url": f"sqlite:///{tmp_path}/two.db"}
            ),
        }
    )
    two = storm(two_settings, tmp_path / "two", workers=2)

    def flood_incidents(result: DemoResult) -> set[str]:
        return {t["incident_key"] for t in result.tickets if t["category"] == "waterlogging"}

    def worthy(result: DemoResult) -> set[str]:
        blind = blind_sites(result)
        keys = {
            i["incident_key"]
            for i in result.incidents
            if i["category"] == "waterlogging"
            and i["complaint_worthy_at"]
            and i["site"] not in blind
        }
        return keys & flood_incidents(result)

    # Every complaint-worthy flood is ticketed alike. Forecast-only pre-alerts near the
    # threshold may differ: when a site's rain arrives relative to its water readings
    # depends on how partitions interleave, with one worker as with two, and since a
    # forecast needs agreeing rain to pre-alert that decides more of them. Measured on
    # Kafka (2026-12-08): two one-worker runs of this storm differ by 4 and 6 of 56-59;
    # one worker against two by up to 13 of 57 (two workers rebalance and re-deliver what
    # was in flight, which reorders it once more).
    assert worthy(one)
    assert worthy(two) == worthy(one)
    assert len(flood_incidents(two) ^ flood_incidents(one)) <= max(
        2, len(flood_incidents(one)) // 4
    )
    assert_no_double_tickets(two)
