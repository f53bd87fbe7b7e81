"""Storm mode alerts: the hysteresis over event time (pure) and the alerts it builds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gridwatch.contracts import Alert, Category, parse_record
from gridwatch.errors import ContractError
from streams.alerts import StormChange, StormState, storm_alert, storm_step
from streams.rain_scoring import RainParams

P = RainParams()  # on: ≥ 0.5 for 5 min; off: < 0.3 for 15 min
T0 = int(datetime(2026, 7, 14, 7, 0, tzinfo=UTC).timestamp() * 1000)
MIN = 60_000


def run(
    shares: list[float], step_ms: int = MIN, params: RainParams = P, state: StormState | None = None
) -> tuple[StormState, list[StormChange]]:
    """One picture per ``step_ms`` of event time from T0."""
    state = state or StormState()
    changes = []
    for i, share in enumerate(shares):
        state, change = storm_step(state, "D01", share, T0 + i * step_ms, params)
        if change is not None:
            changes.append(change)
    return state, changes


def test_a_storm_turns_on_after_five_minutes_and_off_after_fifteen() -> None:
    shares = [0.1] * 3 + [0.6] * 5 + [0.8] * 20 + [0.2] * 16 + [0.0] * 5
    state, changes = run(shares)
    assert [c.on for c in changes] == [True, False]
    on, off = changes
    assert on.started_ms == T0 + 3 * MIN  # the first picture of the high run
    assert on.at_ms == T0 + 8 * MIN  # confirmed 5 minutes later
    assert off.started_ms == on.started_ms
    assert off.ended_ms == T0 + 28 * MIN  # the first picture below the lower share
    assert off.at_ms == T0 + 43 * MIN
    assert off.peak_share == pytest.approx(0.8)
    assert state == StormState()


@pytest.mark.parametrize(
    ("shares", "expected"),
    [
        ([0.6] * 5, []),  # four minutes: not yet
        ([0.6] * 6, [True]),  # five minutes
        ([0.6] * 4 + [0.4] + [0.6] * 5, []),  # a dip below storm_share restarts the clock
        ([0.6] * 6 + [0.4] * 60, [True]),  # between the shares: stays on (hysteresis)
        ([0.6] * 6 + [0.2] * 15, [True]),  # fourteen minutes low: still on
        ([0.6] * 6 + [0.2] * 16, [True, False]),
        ([0.6] * 6 + [0.2] * 10 + [0.35] + [0.2] * 15, [True]),  # a rise restarts the clock
        ([0.6] * 6 + [0.2] * 16 + [0.6] * 6, [True, False, True]),  # a second storm
        ([0.0] * 100, []),
        ([0.49] * 100, []),
    ],
)
def test_hysteresis_table(shares: list[float], expected: list[bool]) -> None:
    _, changes = run(shares)
    assert [c.on for c in changes] == expected


def test_durations_are_event_time_not_picture_count() -> None:
    # a fast replay: one picture per 6 minutes of event time turns it on at the second
    _, changes = run([0.7, 0.7], step_ms=6 * MIN)
    assert [c.on for c in changes] == [True]
    # the same picture time seen again (the timer ticks faster than the rain) changes nothing
    state = StormState()
    for _ in range(50):
        state, change = storm_step(state, "D01", 0.9, T0, P)
        assert change is None
    assert not state.on


def test_parameters_move_the_thresholds() -> None:
    params = RainParams(storm_share=0.3, storm_on_s=60.0, storm_off_share=0.1, storm_off_s=120.0)
    _, changes = run([0.35, 0.35, 0.2, 0.05, 0.05, 0.05], params=params)
    assert [(c.on, c.at_ms) for c in changes] == [(True, T0 + MIN), (False, T0 + 5 * MIN)]


def test_a_resumed_storm_ends_without_starting_again() -> None:
    """A restarted worker starts from the period the store holds open."""
    resumed = StormState(on=True, started_ms=T0 - 30 * MIN, peak_share=0.9)
    _, changes = run([0.7] * 10 + [0.1] * 16, state=resumed)
    assert [c.on for c in changes] == [False]
    assert changes[0].started_ms == T0 - 30 * MIN
    assert changes[0].peak_share == pytest.approx(0.9)


def test_state_round_trips() -> None:
    state, _ = run([0.6] * 6 + [0.2] * 3)
    assert state.on and state.since_ms is not None
    assert StormState.from_dict(state.to_dict()) == state
    assert StormState.from_dict(StormState().to_dict()) == StormState()


@given(st.lists(st.floats(0, 1, allow_nan=False), max_size=200), st.integers(1, 10))
def test_changes_alternate_and_honour_the_minimum_durations(shares: list[float], step: int) -> None:
    step_ms = step * MIN
    _, changes = run(shares, step_ms=step_ms)
    assert [c.on for c in changes] == [i % 2 == 0 for i in range(len(changes))]
    for c in changes:
        i = (c.at_ms - T0) // step_ms
        if c.on:  # every picture since the start was at or above storm_share
            first = (c.started_ms - T0) // step_ms
            assert c.at_ms - c.started_ms >= P.storm_on_s * 1000
            assert all(s >= P.storm_share for s in shares[first : i + 1])
        else:
            assert c.ended_ms is not None
            first = (c.ended_ms - T0) // step_ms
            assert c.at_ms - c.ended_ms >= P.storm_off_s * 1000
            assert all(s < P.storm_off_share for s in shares[first : i + 1])


# -- the alerts ----------------------------------------------------------------------------


def test_storm_alerts_are_district_wide_and_named_after_the_storm() -> None:
    _, (on, off) = run([0.6] * 6 + [0.2] * 16)
    a_on, a_off = storm_alert(on, P), storm_alert(off, P)
    assert a_on.alert_id == f"storm:D01:on:{on.started_ms}"
    assert a_off.alert_id == f"storm:D01:off:{on.started_ms}:{off.ended_ms}"
    for a in (a_on, a_off):
        assert a.incident_key == "storm:D01"
        assert (a.grid_id, a.district_id, a.site) == ("D01", "D01", None)
        assert a.category == Category.WATERLOGGING
        assert parse_record(Alert, a.model_dump_json()) == a  # survives gw.alerts
    assert (a_on.kind, a_off.kind) == ("storm_on", "storm_off")
    assert a_on.ts == datetime.fromtimestamp(on.at_ms / 1000, UTC)
    assert (
        a_on.evidence["started_at"] == datetime.fromtimestamp(on.started_ms / 1000, UTC).isoformat()
    )
    assert (
        a_off.evidence["ended_at"] == datetime.fromtimestamp(off.ended_ms / 1000, UTC).isoformat()
    )
    assert a_on.evidence["peak_share"] == pytest.approx(0.6)
    assert "storm mode on" in a_on.why and "storm mode off" in a_off.why
    # the same storm seen again (another worker, a replay) is the same alert
    _, again = run([0.6] * 6 + [0.2] * 16)
    assert [storm_alert(c, P) for c in again] == [a_on, a_off]


def test_a_storm_alert_must_name_its_district() -> None:
    _, (on,) = run([0.6] * 6)
    good = storm_alert(on, P).model_dump()
    with pytest.raises(ValidationError, match="grid_id is its district_id"):
        Alert.model_validate({**good, "grid_id": "D01-S01-G01"})
    with pytest.raises(ValidationError, match="incident key is 'storm:D01'"):
        Alert.model_validate({**good, "incident_key": "D01:waterlogging"})
    bad = storm_alert(on, P).model_dump_json().replace('"storm:D01"', '"storm:D02"')
    with pytest.raises(ContractError):
        parse_record(Alert, bad)
