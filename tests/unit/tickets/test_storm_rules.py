"""Storm mode in the ticket rules (pure): storm periods merged from their alerts, and the
queue rolled up per grid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tickets import rules
from tickets.rules import StormSpan, roll_up, storm_merge

T0 = datetime(2026, 7, 14, 7, 0, tzinfo=UTC)


def m(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# -- storm periods --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "on", "start", "end", "peak", "action", "after"),
    [
        # no period yet: an on opens one, an off (its on never seen) records the whole storm
        (None, True, 10, 15, 0.6, "storm_start", StormSpan(m(10), None, 0.6)),
        (None, False, 10, 50, 0.9, "storm_end", StormSpan(m(10), m(50), 0.9)),
        # open: another on joins (earliest start, highest peak); an off closes it
        (StormSpan(m(10), None, 0.6), True, 9, 14, 0.7, "storm_join", StormSpan(m(9), None, 0.7)),
        (StormSpan(m(10), None, 0.6), True, 12, 17, 0.5, "storm_join", StormSpan(m(10), None, 0.6)),
        (
            StormSpan(m(10), None, 0.6),
            False,
            10,
            50,
            0.9,
            "storm_end",
            StormSpan(m(10), m(50), 0.9),
        ),
        # closed: a late alert of the same storm joins it, the latest end wins
        (
            StormSpan(m(10), m(50), 0.9),
            True,
            11,
            16,
            0.6,
            "storm_join",
            StormSpan(m(10), m(50), 0.9),
        ),
        (
            StormSpan(m(10), m(50), 0.9),
            False,
            11,
            51,
            0.8,
            "storm_join",
            StormSpan(m(10), m(51), 0.9),
        ),
        (
            StormSpan(m(10), m(50), 0.9),
            False,
            11,
            49,
            0.8,
            "storm_join",
            StormSpan(m(10), m(50), 0.9),
        ),
    ],
)
def test_storm_merge(
    period: StormSpan | None,
    on: bool,
    start: float,
    end: float,
    peak: float,
    action: str,
    after: StormSpan,
) -> None:
    assert storm_merge(period, on, m(start), m(end), peak) == (action, after)


def test_an_off_never_ends_a_storm_before_it_started() -> None:
    _, span = storm_merge(StormSpan(m(10), None, 0.6), False, m(12), m(8), 0.6)
    assert span.ended_at == m(10)


# -- the queue rolled up per grid -------------------------------------------------------------


@dataclass
class T:
    id: str
    grid_id: str
    category: str = "waterlogging"
    severity: str = "minor"
    state: str = "open"
    created: float = 0
    ack: float | None = 15
    resolve: float | None = 45
    ack_breached: bool = False
    resolve_breached: bool = False
    district_id: str = "D01"

    @property
    def created_at(self) -> datetime:
        return m(self.created)

    @property
    def ack_due(self) -> datetime | None:
        return None if self.ack is None else m(self.ack)

    @property
    def resolve_due(self) -> datetime | None:
        return None if self.resolve is None else m(self.resolve)


def test_one_row_per_grid_with_counts_severity_due_breaches_and_age() -> None:
    tickets = [
        T("a1", "G1", created=5, ack=20, resolve=50),
        T("a2", "G1", severity="major", state="acknowledged", created=2, resolve=40),
        T(
            "a3",
            "G1",
            category="device_fault",
            state="pre_alert",
            created=9,
            ack=None,
            resolve=None,
        ),
        T("a4", "G1", ack=3, created=1, ack_breached=False),  # ack due passed at now=10
        T("b1", "G2", severity="critical", created=7, ack=25),
        T("c1", "G3", state="pre_alert", created=1, ack=None, resolve=None, district_id="D02"),
        T("d1", "G4", resolve_breached=True, state="dispatched", created=3, resolve=30),
    ]
    rows = {r.grid_id: r for r in roll_up(tickets, m(10), storm_districts={"D01"})}
    assert set(rows) == {"G1", "G2", "G3", "G4"}
    g1 = rows["G1"]
    assert g1.tickets == 4
    assert g1.counts == {
        "device_fault": {"pre_alert": 1},
        "waterlogging": {"acknowledged": 1, "open": 2},
    }
    assert g1.worst_severity == "major"
    assert g1.earliest_due == m(3)  # a4's acknowledge target
    assert g1.breached == 1  # a4, past its target though not yet swept
    assert g1.oldest_at == m(1)
    assert g1.ticket_ids == ("a2", "a4", "a1", "a3")  # watch-floor order inside the row
    assert (g1.storm, rows["G3"].storm) == (True, False)
    assert rows["G4"].breached == 1  # recorded by the sweep
    assert rows["G3"].earliest_due is None


def test_rows_in_watch_floor_order() -> None:
    tickets = [
        T("p", "G9", state="pre_alert", severity="critical", ack=None, resolve=None),
        T("m1", "G5", ack=30),
        T("m2", "G6", ack=20),
        T("x", "G7", severity="major", ack=60),
        T("same", "G8", ack=20),
    ]
    order = [r.grid_id for r in roll_up(tickets, m(0))]
    # severity first, then the nearest due, then the grid id; pre-alert-only grids last
    assert order == ["G7", "G6", "G8", "G5", "G9"]


def test_every_ticket_is_in_exactly_one_row() -> None:
    tickets = [T(f"t{i}", f"G{i % 7}", created=i) for i in range(50)]
    rows = roll_up(tickets, m(0))
    ids = [i for r in rows for i in r.ticket_ids]
    assert sorted(ids) == sorted(t.id for t in tickets)
    assert len(rows) == 7
    assert sum(r.tickets for r in rows) == 50
    assert roll_up([], m(0)) == []


def test_current_due_follows_the_state() -> None:
    assert rules.current_due("open", m(1), m(2)) == m(1)
    assert rules.current_due("acknowledged", m(1), m(2)) == m(2)
    assert rules.current_due("pre_alert", None, None) is None
