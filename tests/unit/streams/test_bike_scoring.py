"""The bike scorer over a metro-exit evening: bikes pile up past capacity, then leave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from gridwatch.contracts import BikeReading
from simulators.city import generate_city
from streams.bike_scoring import BikeScorer

T0 = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)


def run(counts: np.ndarray, capacity: int = 80, batch: int = 1) -> list[str]:
    registry = generate_city(5, "small").registry()
    site = registry.devices_of("bike")[0]
    scorer = BikeScorer(registry)
    stored: dict = {}
    kinds: list[str] = []
    readings = [
        BikeReading(
            device_id=site.device.device_id,
            ts=T0 + timedelta(minutes=2 * i),
            received_at=T0 + timedelta(minutes=2 * i),
            grid_id=site.grid_id,
            district_id=site.district_id,
            bikes=int(c),
            capacity=capacity,
        )
        for i, c in enumerate(counts)
    ]
    for start in range(0, len(readings), batch):
        result = scorer.score(readings[start : start + batch], stored)
        stored.update(result.states)
        kinds += [a.kind for a in result.alerts]
    return kinds


def test_overflow_is_opened_and_cleared() -> None:
    counts = np.r_[
        np.full(20, 50),
        np.linspace(50, 110, 20),
        np.full(15, 110),
        np.linspace(110, 40, 15),
        np.full(20, 40),
    ]
    kinds = run(counts)
    assert "observed" in kinds
    assert kinds[-1] == "clear"
    assert kinds.index("observed") < kinds.index("clear")


def test_half_full_site_raises_nothing() -> None:
    assert run(np.full(90, 40)) == []


def test_batches_give_the_same_alerts() -> None:
    counts = np.r_[
        np.full(20, 50),
        np.linspace(50, 110, 20),
        np.full(15, 110),
        np.linspace(110, 40, 15),
        np.full(20, 40),
    ]
    assert run(counts, batch=1) == run(counts, batch=9)
