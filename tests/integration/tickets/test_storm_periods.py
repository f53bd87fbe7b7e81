"""Storm periods in the real store (SQLite and PostgreSQL): the rain job's storm alerts
recorded once per storm, idempotent by alert id, never a ticket; the queue rolled up
per grid."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from gridwatch.contracts import Alert
from streams.alerts import StormChange, storm_alert
from streams.rain_scoring import RainParams
from tickets.db import session_factory
from tickets.errors import TicketError, UnknownLocation
from tickets.models import OutboxRow, SeenAlert, StormPeriod, Ticket
from tickets.queries import queue_view, storm_periods
from tickets.service import TicketService

from .tickets_testlib import T0, Clock, make_alert

pytestmark = pytest.mark.integration

MS0 = int(T0.timestamp() * 1000)
MIN = 60_000


def storm(on: bool, start_min: int, end_min: int | None = None, peak: float = 0.6) -> Alert:
    """The rain job's alert for a storm over D01 from ``start_min`` (to ``end_min``)."""
    start = MS0 + start_min * MIN
    if on:
        change = StormChange("D01", True, start + 5 * MIN, start, None, peak, peak)
    else:
        assert end_min is not None
        end = MS0 + end_min * MIN
        change = StormChange("D01", False, end + 15 * MIN, start, end, 0.1, peak)
    return storm_alert(change, RainParams())


def periods(engine: Engine) -> list[StormPeriod]:
    with session_factory(engine)() as s:
        return list(s.scalars(select(StormPeriod).order_by(StormPeriod.started_at)))


def count(engine: Engine, model: type) -> int:
    with session_factory(engine)() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_a_storm_is_one_period_and_never_a_ticket(service: TicketService, engine: Engine) -> None:
    on, off = storm(True, 10, peak=0.7), storm(False, 10, 70, peak=0.9)
    first = service.raise_alert(on)
    assert (first.action, first.ticket_id, first.state) == ("storm_start", None, None)
    assert service.open_storms() == {"D01": (T0 + timedelta(minutes=10), pytest.approx(0.7))}
    assert service.raise_alert(on).duplicate  # a replay of gw.alerts
    assert service.raise_alert(off).action == "storm_end"
    assert service.raise_alert(off).duplicate
    assert service.open_storms() == {}
    (p,) = periods(engine)
    assert (p.district_id, p.started_at, p.ended_at) == (
        "D01",
        T0 + timedelta(minutes=10),
        T0 + timedelta(minutes=70),
    )
    assert p.peak_share == pytest.approx(0.9)
    assert p.alert_ids == [on.alert_id, off.alert_id]
    # recorded like every alert (drills count gw.alerts against seen_alerts), no ticket,
    # no ticket event
    with session_factory(engine)() as s:
        seen = {a.alert_id: a.action for a in s.scalars(select(SeenAlert))}
    assert seen == {on.alert_id: "storm_start", off.alert_id: "storm_end"}
    assert count(engine, Ticket) == 0
    assert count(engine, OutboxRow) == 0


def test_workers_that_saw_the_storm_start_apart_record_one_period(
    service: TicketService, engine: Engine
) -> None:
    """Two workers (or a restarted one) whose pictures put the start a minute apart send
    different alert ids: the store joins them into the period already open, and alerts
    arriving after the period closed join it too."""
    a_on, b_on = storm(True, 10), storm(True, 11, peak=0.8)
    a_off, b_off = storm(False, 10, 60), storm(False, 11, 61)
    outcomes = [service.raise_alert(a) for a in (a_on, a_off, b_on, b_off)]
    assert [o.action for o in outcomes] == ["storm_start", "storm_end", "storm_join", "storm_join"]
    (p,) = periods(engine)
    assert (p.started_at, p.ended_at) == (T0 + timedelta(minutes=10), T0 + timedelta(minutes=61))
    assert p.peak_share == pytest.approx(0.8)
    assert p.alert_ids == [a_on.alert_id, a_off.alert_id, b_on.alert_id, b_off.alert_id]
    # a later storm is a period of its own
    assert service.raise_alert(storm(True, 200)).action == "storm_start"
    assert [q.ended_at is None for q in periods(engine)] == [False, True]
    # an off whose on was never seen records the whole storm; the open one stays open
    assert service.raise_alert(storm(False, 100, 150)).action == "storm_end"
    assert [(q.started_at.hour, q.ended_at is None) for q in periods(engine)] == [
        (8, False),
        (9, False),
        (11, True),
    ]


def test_concurrent_workers_open_one_period(service: TicketService, engine: Engine) -> None:
    """The same storm's on alert from eight workers at once, half of them a minute late:
    the partial unique index settles the race."""
    alerts = [storm(True, 10 + i % 2) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(service.raise_alert, alerts))
    assert sorted(o.action for o in outcomes).count("storm_start") == 1
    (p,) = periods(engine)
    assert p.ended_at is None
    assert sorted(p.alert_ids) == sorted({a.alert_id for a in alerts})


def test_batches_from_the_stream_job_record_storms_too(
    service: TicketService, engine: Engine
) -> None:
    flood = make_alert("f-1", minutes=20)
    outcomes = service.raise_alerts([storm(True, 10), flood, storm(True, 10)])
    assert [o.action for o in outcomes] == ["storm_start", "create", "duplicate"]
    assert count(engine, Ticket) == 1
    assert len(periods(engine)) == 1


def test_bad_storm_alerts_are_refused(service: TicketService, engine: Engine) -> None:
    on = storm(True, 10)
    grid = "D01-S01-G01"  # (model_copy skips the contract's own check of the key)
    in_a_grid = on.model_copy(update={"grid_id": grid, "district_id": grid, "incident_key": "x"})
    with pytest.raises(UnknownLocation, match="not a district"):
        service.raise_alert(in_a_grid)
    bad_time = on.model_copy(update={"evidence": {**on.evidence, "started_at": "soon"}})
    with pytest.raises(TicketError, match="started_at is not a UTC time"):
        service.raise_alert(bad_time)
    later = (on.ts + timedelta(minutes=1)).isoformat()
    with pytest.raises(TicketError, match="after the alert"):
        service.raise_alert(
            on.model_copy(update={"evidence": {**on.evidence, "started_at": later}})
        )
    with pytest.raises(TicketError, match="peak_share"):
        service.raise_alert(on.model_copy(update={"evidence": {**on.evidence, "peak_share": 3}}))
    assert periods(engine) == []
    assert count(engine, SeenAlert) == 0  # refused alerts are not marked as handled


def test_queue_rolls_up_per_grid_in_storm_mode(service: TicketService, clock: Clock) -> None:
    grids = ["D01-S01-G01", "D01-S01-G02", "D01-S02-G03"]
    for i in range(9):
        service.raise_alert(
            make_alert(f"q-{i}", grid=grids[i % 3], site=f"s{i}", minutes=i, severity="minor")
        )
    service.raise_alert(make_alert("q-x", grid=grids[1], site="big", severity="critical"))
    service.raise_alert(
        make_alert("q-d", grid=grids[0], site="dev", category="device_fault", kind="maintenance")
    )
    clock.now = T0 + timedelta(minutes=30)
    with service.read_session() as s:
        calm = queue_view(s, "auto", clock(), 200)
    assert (calm["groups"], calm["storm_districts"]) == ([], [])
    assert len(calm["items"]) == 11  # no storm: the flat queue

    service.raise_alert(storm(True, 0))
    with service.read_session() as s:
        view = queue_view(s, "auto", clock(), 200)
        assert storm_periods(s, active=True)[0]["district_id"] == "D01"
    assert view["storm_districts"] == ["D01"]
    assert view["items"] == []
    rows = view["groups"]
    assert [r["grid_id"] for r in rows] == [grids[1], grids[0], grids[2]]  # critical first
    assert sum(r["tickets"] for r in rows) == 11
    g0 = rows[1]
    assert g0["storm"] is True
    assert g0["counts"] == {"device_fault": {"open": 1}, "waterlogging": {"open": 3}}
    assert g0["breached"] == 3  # the floods: 15 min to acknowledge, 30 min gone
    assert g0["oldest_at"] == T0.isoformat()
    assert g0["ticket_ids"] == [i["id"] for i in g0["items"]]
    assert rows[0]["worst_severity"] == "critical"

    service.raise_alert(storm(False, 0, 40))
    with service.read_session() as s:
        assert queue_view(s, "auto", clock(), 200)["groups"] == []
        assert len(queue_view(s, "grid", clock(), 200)["groups"]) == 3  # asked for
        assert len(queue_view(s, "grid", clock(), 2)["groups"]) == 2
