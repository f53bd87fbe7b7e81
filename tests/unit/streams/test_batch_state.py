"""A redelivered batch (worker killed before its ack, a rebalance) must not be scored
twice: the table already holds the state it produced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridwatch.contracts import WaterReading
from streams.batch_state import SEEN, fresh, stamp

T0 = datetime(2026, 7, 1, 14, 0, tzinfo=UTC)


def reading(device: str, minute: int) -> WaterReading:
    ts = T0 + timedelta(minutes=minute)
    return WaterReading(
        device_id=device, ts=ts, received_at=ts, grid_id="g1", district_id="d1", level_cm=1.0
    )


def test_a_replayed_batch_is_not_scored_again() -> None:
    batch = [reading("a", 0), reading("b", 0), reading("a", 1)]
    states: dict = {"a": {"det": {}}, "b": {"det": {}}}
    assert fresh(batch, {}) == batch
    stamp(states, batch)
    assert states["a"][SEEN] == (T0 + timedelta(minutes=1)).timestamp()
    assert fresh(batch, states) == []
    later = [reading("a", 1), reading("a", 2), reading("b", 1)]
    assert fresh(later, states) == later[1:]


def test_a_late_reading_is_not_scored_behind_a_newer_one() -> None:
    batch = [reading("a", 5), reading("a", 3), reading("a", 6)]
    assert fresh(batch, {}) == [batch[0], batch[2]]


def test_stamp_only_touches_devices_with_a_new_state() -> None:
    states: dict = {"a": {}}
    stamp(states, [reading("a", 0), reading("b", 0)])
    assert set(states) == {"a"}
