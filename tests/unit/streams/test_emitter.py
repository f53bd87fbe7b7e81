"""Which assessments are worth a Kafka record: first, moved, or heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridwatch.contracts import Assessment
from streams.scored_job import Emitter

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def water(minute: float, depth: float, risk: float = 0.0) -> Assessment:
    return Assessment(
        device_id="w1",
        kind="water",
        ts=T0 + timedelta(minutes=minute),
        grid_id="g1",
        district_id="d1",
        value=depth,
        risk=risk,
    )


def test_unchanged_assessments_wait_for_the_heartbeat() -> None:
    e = Emitter(heartbeat_s=300)
    assert e.due(water(0, 0.0))
    assert not e.due(water(1, 0.1))  # nothing moved
    assert e.due(water(2, 3.0))  # the water rose
    assert not e.due(water(3, 3.2))
    assert e.due(water(4, 3.2, risk=0.4))  # the risk moved
    assert e.due(water(9.5, 3.2, risk=0.4))  # five minutes since the last one


def test_camera_water_cover_counts_in_percent() -> None:
    e = Emitter()

    def camera(minute: float, cover: float) -> Assessment:
        return Assessment(
            device_id="c1",
            kind="camera",
            ts=T0 + timedelta(minutes=minute),
            grid_id="g1",
            district_id="d1",
            value=40.0,
            detail={"water_cover": cover},
        )

    assert e.due(camera(0, 0.0))
    assert not e.due(camera(1, 0.002))
    assert e.due(camera(2, 0.1))
