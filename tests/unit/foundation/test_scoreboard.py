"""The 未诉先办 scoreboard on hand-made tickets and incidents (every outcome once)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gridwatch.scoreboard import MatchParams, Spread, check_targets, score_run

T0 = datetime(2026, 7, 14, 7, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(minutes: float | None) -> str | None:
    return None if minutes is None else at(minutes).isoformat().replace("+00:00", "Z")


def incident(
    key: str,
    start: float,
    end: float | None,
    *,
    worthy: float | None = None,
    call: float | None = None,
    calls: tuple[str, ...] = (),
    n: int = 1,
    detail: str = "",
) -> dict[str, Any]:
    grid, category, site = key.split(":")
    return {
        "incident_id": f"inc-{category}-{site}-{n:04d}",
        "incident_key": key,
        "category": category,
        "grid_id": grid,
        "district_id": "D01",
        "site": site,
        "lon": 121.4,
        "lat": 31.2,
        "start": iso(start),
        "end": iso(end),
        "complaint_worthy_at": iso(worthy),
        "first_complaint_at": iso(call),
        "peak": 20.0,
        "complaint_ids": list(calls),
        "detail": detail,
    }


def ticket(
    tid: str,
    key: str,
    created: float,
    *,
    closed: float | None = None,
    state: str = "open",
    source: str = "proactive",
) -> dict[str, Any]:
    return {
        "id": tid,
        "incident_key": key,
        "category": key.split(":")[1],
        "state": state,
        "severity": "major",
        "source": source,
        "created_at": at(created),
        "closed_at": None if closed is None else at(closed),
        "why": f"why {tid}",
    }


WL = "G01:waterlogging:site-wl-1"


def board(tickets: list[dict[str, Any]], incidents: list[dict[str, Any]], **kw: Any) -> Any:
    kw.setdefault("grids", 10)
    kw.setdefault("duration_s", 86400.0)
    return score_run(tickets, incidents, kw.pop("complaints", []), **kw)


def test_pre_empted_incident_has_both_lead_times() -> None:
    b = board(
        [ticket("t1", WL, 10)],
        [incident(WL, 15, 90, worthy=30, call=42, calls=("c1",))],
        complaints=[{"id": "c1", "ticket_id": "t1"}],
    )
    (o,) = b.incidents
    assert o.outcome == "pre-empted"
    assert o.lead_complaint_min == pytest.approx(32.0)
    assert o.lead_worthy_min == pytest.approx(20.0)
    wl = b.categories["waterlogging"]
    assert (wl.complained, wl.preempted, wl.preemption_rate) == (1, 1, 1.0)
    assert wl.precision == 1.0 and wl.false_tickets == 0
    assert wl.recall_worthy == 1.0 and wl.duplicates == 0
    assert b.overall.lead_complaint_min.median == pytest.approx(32.0)


def test_late_ticket_is_not_pre_emption() -> None:
    b = board([ticket("t1", WL, 50)], [incident(WL, 15, 90, worthy=30, call=42, calls=("c1",))])
    (o,) = b.incidents
    assert o.outcome == "late"
    assert o.late_min == pytest.approx(8.0)
    assert o.lead_complaint_min is None
    assert o.lead_worthy_min == pytest.approx(-20.0)  # the ticket came after worthiness
    wl = b.categories["waterlogging"]
    assert (wl.preempted, wl.late, wl.preemption_rate) == (0, 1, 0.0)
    assert wl.precision == 1.0  # late but real
    assert wl.lead_complaint_min == Spread(0, None, None, None)


def test_missed_and_reactive_incidents() -> None:
    other = "G02:waterlogging:site-wl-2"
    b = board(
        [ticket("r1", "G02:waterlogging", 50, source="complaint")],
        [
            incident(WL, 15, 90, worthy=30, call=42, calls=("c1",)),
            incident(other, 15, 90, worthy=30, call=50, calls=("c2",)),
        ],
        complaints=[{"id": "c2", "ticket_id": "r1"}],
    )
    outcomes = {o.incident_key: o.outcome for o in b.incidents}
    assert outcomes == {WL: "missed", other: "reactive"}
    wl = b.categories["waterlogging"]
    assert (wl.missed, wl.reactive_only) == (1, 1)
    assert wl.recall_worthy == 0.5  # the reactive one was ticketed, by its call
    assert wl.proactive_tickets == 0 and wl.precision is None


def test_false_tickets_per_grid_per_day_and_precision() -> None:
    b = board(
        [
            ticket("t1", WL, 10),
            ticket("f1", "G03:waterlogging:site-wl-3", 20),
            ticket("f2", "G04:street_vendor:cam-4", 30),
        ],
        [incident(WL, 15, 90, worthy=30)],
        grids=4,
        duration_s=43200.0,  # half a day
    )
    assert b.overall.proactive_tickets == 3
    assert b.overall.false_tickets == 2
    assert b.overall.precision == pytest.approx(1 / 3)
    assert b.overall.false_per_grid_day == pytest.approx(2 / (4 * 0.5))
    assert b.categories["street_vendor"].precision == 0.0
    assert {t.ticket_id for t in b.tickets if t.incident_id is None} == {"f1", "f2"}


def test_ticket_matches_only_inside_the_window() -> None:
    p = MatchParams(before_min=30, after_min=10)
    inc = [incident(WL, 100, 150)]
    early = board([ticket("t1", WL, 65, closed=80, state="retracted")], inc, params=p)
    assert early.overall.false_tickets == 1  # 35 min before the start, gone before it
    # still active when the water came: that ticket was about this incident after all
    assert board([ticket("t1", WL, 65)], inc, params=p).overall.false_tickets == 0
    in_time = board([ticket("t1", WL, 75)], inc, params=p)
    assert in_time.overall.false_tickets == 0
    after = board([ticket("t1", WL, 161)], inc, params=p)
    assert after.overall.false_tickets == 1  # 11 min after the end


def test_ticket_still_open_from_an_earlier_incident_covers_the_next() -> None:
    b = board(
        [ticket("t1", WL, 10)],  # never closed
        [incident(WL, 15, 40), incident(WL, 200, 260, worthy=215, call=230, calls=("c2",), n=2)],
    )
    second = next(o for o in b.incidents if o.incident_id.endswith("0002"))
    assert second.outcome == "pre-empted"
    assert second.lead_complaint_min == pytest.approx(220.0)
    assert b.tickets[0].incident_id.endswith("0001")  # the nearest incident


def test_concurrent_tickets_are_duplicates_and_later_ones_re_raised() -> None:
    dup = board(
        [
            ticket("t1", WL, 10),
            ticket("t2", WL, 20),  # while t1 is active
            ticket("r1", "G01:waterlogging", 45, source="complaint"),  # also while t1 is
        ],
        [incident(WL, 15, 90, worthy=30, call=45, calls=("c1",))],
        complaints=[{"id": "c1", "ticket_id": "r1"}],
    )
    assert dup.categories["waterlogging"].duplicates == 2
    assert dup.categories["waterlogging"].duplicates_reactive == 1  # r1: call not linked
    assert dup.duplicates == 2
    assert dup.incidents[0].outcome == "pre-empted"
    again = board(
        [
            ticket("t1", WL, 10, closed=25, state="auto_resolved"),
            ticket("t2", WL, 40),
        ],
        [incident(WL, 15, 90)],
    )
    wl = again.categories["waterlogging"]
    assert (wl.duplicates, wl.reraised) == (0, 1)
    met = {t.name: t.met for t in check_targets(dup)}
    assert met["duplicate tickets"] is False
    assert {t.name: t.met for t in check_targets(again)}["duplicate tickets"] is True


def test_retracted_pre_alerts() -> None:
    b = board(
        [
            ticket("p1", WL, 10, closed=20, state="retracted"),  # then the flood came
            ticket("p2", "G05:waterlogging:site-wl-5", 10, closed=30, state="retracted"),
        ],
        [incident(WL, 15, 90, worthy=30, call=42, calls=("c1",))],
    )
    wl = b.categories["waterlogging"]
    assert (wl.retracted, wl.retracted_false) == (2, 1)
    assert b.incidents[0].outcome == "retracted"  # withdrawn before the call: no pre-emption
    assert wl.preempted == 0
    # retracted after the call: it was there when the resident called
    later = board(
        [ticket("p1", WL, 10, closed=60, state="retracted")],
        [incident(WL, 15, 90, worthy=30, call=42, calls=("c1",))],
    )
    assert later.incidents[0].outcome == "pre-empted"


def test_device_faults_raised_as_maintenance_not_as_floods() -> None:
    dead = "G01:device_fault:wl-1"
    drift = "G02:device_fault:wl-2"
    cam = "G03:device_fault:cam-3"
    b = board(
        [
            ticket("m1", dead, 30, source="maintenance"),
            ticket("m2", "G09:device_fault:wl-9", 30, source="maintenance"),  # no fault there
            ticket("f1", "G02:waterlogging:site-wl-2", 50),  # the drifting sensor "floods"
        ],
        [
            incident(dead, 20, None, detail="battery_death"),
            incident(drift, 40, 100, detail="drift"),
            incident(cam, 10, 30, detail="stuck"),
        ],
        device_kinds={"wl-1": "water", "wl-2": "water", "cam-3": "camera"},
    )
    f = b.faults
    assert (f.faults, f.as_maintenance, f.as_flood) == (3, 1, 1)
    assert (f.maintenance_tickets, f.maintenance_false) == (2, 1)
    assert f.maintenance_reraised == 0
    rows = {(r.kind, r.fault): (r.faults, r.as_maintenance, r.as_flood) for r in f.rows}
    assert rows == {
        ("water", "battery_death"): (1, 1, 0),
        ("water", "drift"): (1, 0, 1),
        ("camera", "stuck"): (1, 0, 0),
    }
    # device faults stay out of the street incidents' overall row
    assert "device_fault" not in b.categories
    assert b.overall.proactive_tickets == 1 and b.overall.false_tickets == 1


def test_a_flapping_maintenance_ticket_is_counted() -> None:
    dead = "G01:device_fault:wl-1"
    b = board(
        [
            ticket("m1", dead, 30, closed=35, state="auto_resolved", source="maintenance"),
            ticket("m2", dead, 40, closed=45, state="auto_resolved", source="maintenance"),
            ticket("m3", dead, 50, source="maintenance"),
        ],
        [incident(dead, 20, None, detail="clock_skew")],
        device_kinds={"wl-1": "water"},
    )
    assert (b.faults.as_maintenance, b.faults.maintenance_reraised) == (1, 2)
    assert b.duplicates == 0


def test_a_skewed_clock_floods_at_any_time() -> None:
    skew = "G02:device_fault:wl-2"
    b = board(
        [ticket("f1", "G02:waterlogging:site-wl-2", -120)],  # stamped 2 h early
        [incident(skew, 0, None, detail="clock_skew")],
        device_kinds={"wl-2": "water"},
    )
    assert b.faults.as_flood == 1
    assert b.faults.as_maintenance == 0


def test_the_store_s_view_of_the_calls() -> None:
    b = board(
        [ticket("t1", WL, 10)],
        [incident(WL, 15, 90, worthy=30, call=42, calls=("c1", "c2"))],
        complaints=[
            {"id": "c1", "ticket_id": "t1", "pre_empted": True},
            {"id": "c2", "ticket_id": "t1", "pre_empted": False},
        ],
    )
    assert (b.calls_filed, b.calls_pre_empted_in_store) == (2, 1)
    assert b.to_dict()["calls_pre_empted_in_store"] == 1


def test_floods_at_failed_sensors_are_blind() -> None:
    dead = "G01:device_fault:wl-1"
    b = board(
        [ticket("t2", "G02:waterlogging:site-wl-2", 20)],
        [
            incident(WL, 15, 90, worthy=30, call=42, calls=("c1",)),  # its sensor died at 10
            incident("G02:waterlogging:site-wl-2", 15, 90, worthy=30, call=42, calls=("c2",)),
            incident(dead, 10, None, detail="battery_death"),
        ],
        device_kinds={"wl-1": "water"},
    )
    blind = {o.incident_key: o.blind for o in b.incidents if o.category == "waterlogging"}
    assert blind == {WL: True, "G02:waterlogging:site-wl-2": False}
    wl = b.categories["waterlogging"]
    assert (wl.complained, wl.preempted, wl.blind_complained) == (2, 1, 1)
    assert wl.preemption_rate == 0.5
    assert wl.preemption_rate_seeing == 1.0
    # a fault that began after the call did not blind the sensor before it mattered
    late_fault = board(
        [], [incident(WL, 15, 90, call=42), incident(dead, 50, None, detail="dropout")]
    )
    assert not late_fault.incidents[0].blind


def test_precision_without_retracted_pre_alerts_and_when_false_sites_flooded() -> None:
    b = board(
        [
            ticket("t1", WL, 100),
            ticket("p1", WL, 10, closed=20, state="retracted"),  # 90 min before the flood
            ticket("p2", "G05:waterlogging:site-wl-5", 10, closed=30, state="retracted"),
        ],
        [incident(WL, 100, 150)],
    )
    wl = b.categories["waterlogging"]
    assert wl.precision == pytest.approx(1 / 3)
    assert wl.precision_not_retracted == 1.0
    later = {t.ticket_id: t.next_incident_min for t in b.tickets if t.incident_id is None}
    assert later == {"p1": pytest.approx(90.0), "p2": None}


def test_a_proactive_ticket_beside_a_calls_ticket_is_a_reactive_duplicate() -> None:
    b = board(
        [
            ticket("r1", "G01:waterlogging", 40, source="complaint"),  # a neighbour's call
            ticket("t1", WL, 50),
        ],
        [incident(WL, 45, 120, call=70, calls=("c1",))],
        complaints=[{"id": "c1", "ticket_id": "r1"}],  # linked to the older ticket
    )
    wl = b.categories["waterlogging"]
    assert (wl.duplicates, wl.duplicates_reactive) == (1, 1)


def test_spread_percentiles() -> None:
    s = Spread.of([float(x) for x in range(11)])
    assert (s.n, s.median, s.p10, s.p90) == (11, 5.0, 1.0, 9.0)
    assert Spread.of([7.0]) == Spread(1, 7.0, 7.0, 7.0)


def test_targets_and_json() -> None:
    b = board(
        [ticket("t1", WL, 10)],
        [incident(WL, 15, 90, worthy=30, call=42, calls=("c1",))],
    )
    met = {t.name: t.met for t in check_targets(b)}
    assert met == {
        "pre-emption rate": True,
        "median lead before the first call (min)": True,
        "precision": True,
        "duplicate tickets": True,
    }
    doc = b.to_dict()
    assert doc["overall"]["preemption_rate"] == 1.0
    assert doc["categories"]["waterlogging"]["lead_complaint_min"]["median"] == 32.0
    assert doc["incidents"][0]["first_complaint_at"] == "2026-07-14T07:42:00Z"
    assert doc["duplicates"] == 0
    json.dumps(doc)  # plain JSON all the way down


def test_empty_run() -> None:
    b = board([], [])
    assert b.overall.preemption_rate is None
    assert b.overall.precision is None
    assert {t.name: t.met for t in check_targets(b)}["pre-emption rate"] is False
