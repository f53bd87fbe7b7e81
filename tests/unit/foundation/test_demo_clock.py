"""A scenario written for a time of day (and a working day) is replayed at that time."""

from __future__ import annotations

from datetime import UTC, datetime

from gridwatch.demo import at_own_time_of_day
from simulators.scenario import load_scenario


def test_an_evening_scenario_ends_at_its_own_evening_on_a_working_day() -> None:
    sc = load_scenario("rush-hour-event").with_overrides(duration="150min")  # 09:00Z +2.5 h
    tuesday_morning = datetime(2026, 12, 8, 1, 27, tzinfo=UTC)
    assert at_own_time_of_day(sc, tuesday_morning) == datetime(2026, 12, 7, 11, 30, tzinfo=UTC)
    sunday = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)  # Monday 04:00 local, before 19:30
    assert at_own_time_of_day(sc, sunday) == datetime(2026, 12, 4, 11, 30, tzinfo=UTC)  # Fri
    later_today = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
    assert at_own_time_of_day(sc, later_today) == datetime(2026, 12, 8, 11, 30, tzinfo=UTC)
