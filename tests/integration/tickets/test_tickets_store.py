"""The ticket store and service against real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from gridwatch.registry import Registry
from tickets.db import current_revision, migrate, session_factory
from tickets.errors import IllegalTransition, TicketError, TicketNotFound, UnknownLocation
from tickets.models import AuditRow, Base, Evidence, OutboxRow, Ticket
from tickets.queries import kpis, precision_report, ticket_detail
from tickets.service import TicketService

from .tickets_testlib import GRID, T0, Clock, make_alert, make_complaint

pytestmark = pytest.mark.integration


def count(engine: Engine, model: type) -> int:
    with session_factory(engine)() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_migrations_reach_head_without_drift(engine: Engine) -> None:
    assert current_revision(engine) == "0003"
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_and_upgrade_again(engine: Engine) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from tickets.db import alembic_config

    with engine.connect() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        conn.commit()
    assert "tickets" not in inspect(engine).get_table_names()
    assert "storm_periods" not in inspect(engine).get_table_names()
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"tickets", "outbox", "audit_log", "storm_periods"} <= tables


def test_sqlite_runs_in_wal_mode(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        assert engine.dialect.name == "postgresql"
        return
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_forecast_then_observed_then_clear(service: TicketService, engine: Engine) -> None:
    first = service.raise_alert(make_alert("a1", "forecast", probability=0.6))
    assert (first.action, first.state) == ("create", "pre_alert")
    again = service.raise_alert(make_alert("a1", "forecast", probability=0.6))
    assert again.duplicate
    assert again.ticket_id == first.ticket_id
    assert count(engine, Evidence) == 1
    assert count(engine, AuditRow) == 1

    obs = service.raise_alert(make_alert("a2", "observed", severity="major", minutes=20))
    assert (obs.action, obs.state, obs.escalated) == ("promote", "open", True)
    assert obs.ticket_id == first.ticket_id
    with service.read_session() as s:
        t = s.get(Ticket, first.ticket_id)
        assert t is not None
        assert t.severity == "major"
        assert t.opened_at == T0 + timedelta(minutes=20)
        assert t.ack_due == t.opened_at + timedelta(minutes=15)
        assert t.resolve_due == t.opened_at + timedelta(minutes=45)
        assert t.assignee.startswith(GRID)
        assert t.agency == "drainage"

    cleared = service.raise_alert(make_alert("a3", "clear", minutes=30))
    assert (cleared.action, cleared.state) == ("auto_resolve", "auto_resolved")
    # a new observation after closing opens a new ticket for the same incident
    new = service.raise_alert(make_alert("a4", "observed", minutes=60))
    assert new.action == "create"
    assert new.ticket_id != first.ticket_id
    assert count(engine, AuditRow) == count(engine, OutboxRow)


def test_recede_retracts_pre_alert_and_clear_without_ticket_is_ignored(
    service: TicketService,
) -> None:
    assert service.raise_alert(make_alert("r0", "clear")).action == "ignore"
    t = service.raise_alert(make_alert("r1", "forecast"))
    out = service.raise_alert(make_alert("r2", "recede", minutes=5))
    assert (out.action, out.state, out.ticket_id) == ("retract", "retracted", t.ticket_id)


def test_maintenance_alert_opens_device_fault_ticket(service: TicketService) -> None:
    out = service.raise_alert(
        make_alert("m1", "maintenance", category="waterlogging", evidence={"device_id": "wl-00001"})
    )
    with service.read_session() as s:
        t = s.get(Ticket, out.ticket_id)
        assert t is not None
        assert (t.category, t.source, t.state) == ("device_fault", "maintenance", "open")
        assert t.incident_key == f"{GRID}:device_fault:site-a"
        assert t.agency == "iot_maintenance"


def test_database_refuses_second_active_ticket(service: TicketService, engine: Engine) -> None:
    out = service.raise_alert(make_alert("u1"))
    with session_factory(engine)() as s:
        t = s.get(Ticket, out.ticket_id)
        assert t is not None
        clone = Ticket(**{c.name: getattr(t, c.name) for c in Ticket.__table__.columns})
        clone.id = "TK-CLONE"
        s.add(clone)
        with pytest.raises(IntegrityError):
            s.commit()


def test_evidence_bundle_and_sensor_location(service: TicketService, registry: Registry) -> None:
    dev = registry.devices["wl-00001"]
    evidence = {
        "device_id": "wl-00001",
        "model_version": "flood-gbm-3",
        "readings": [{"ts": "2026-07-01T07:58:00Z", "value": 3.0, "qc": 1}],
        "forecast": [{"horizon_min": 30, "q50": 12.0, "p_exceed": {"15.0": 0.4}}],
    }
    out = service.raise_alert(make_alert("e1", grid=dev.grid_id, evidence=evidence))
    with service.read_session() as s:
        d = ticket_detail(s, out.ticket_id or "")
    assert d is not None
    assert (d["lon"], d["lat"]) == (dev.device.lon, dev.device.lat)
    assert d["micro_grid_id"] == dev.micro_grid_id
    assert d["model_version"] == "flood-gbm-3"
    assert d["evidence"][0]["device_ids"] == ["wl-00001"]
    assert d["evidence"][0]["payload"]["forecast"][0]["q50"] == 12.0
    assert d["sparkline"] == [{"ts": "2026-07-01T07:58:00Z", "value": 3.0}]
    assert d["forecast"] == [
        {"ts": "2026-07-01T08:30:00+00:00", "q10": None, "q50": 12.0, "q90": None}
    ]
    assert d["audit"][0]["action"] == "create"


def test_complaint_pre_empted_reactive_and_duplicate(
    service: TicketService, registry: Registry
) -> None:
    dev = registry.devices["wl-00001"].device
    grid = registry.devices["wl-00001"].grid_id
    proactive = service.raise_alert(
        make_alert("c-a1", "forecast", grid=grid, lon=dev.lon, lat=dev.lat)
    )
    out = service.file_complaint(make_complaint("h1", dev.lon, dev.lat + 0.001, minutes=42))
    assert out.ticket_id == proactive.ticket_id
    assert (out.linked, out.pre_empted, out.lead_min) == (True, True, 42.0)
    with service.read_session() as s:
        t = s.get(Ticket, out.ticket_id)
        assert t is not None
        assert t.state == "open"  # the complaint confirmed the pre-alert
    assert service.file_complaint(make_complaint("h1", dev.lon, dev.lat, minutes=42)).duplicate

    # another category in the same place: nothing proactive → a reactive ticket
    other = service.file_complaint(
        make_complaint("h2", dev.lon, dev.lat, minutes=50, category="exposed_garbage")
    )
    assert (other.linked, other.pre_empted, other.lead_min) == (False, False, None)
    # the next garbage complaint joins the reactive ticket but was not pre-empted
    third = service.file_complaint(
        make_complaint("h3", dev.lon, dev.lat, minutes=55, category="exposed_garbage")
    )
    assert third.ticket_id == other.ticket_id
    assert (third.linked, third.pre_empted) == (True, False)


def test_complaint_far_from_site_ticket_opens_its_own(
    service: TicketService, registry: Registry
) -> None:
    cfg = service.config.model_copy(update={"complaint_link_distance_m": 300.0})
    service = TicketService(service.engine, cfg, registry, clock=service.clock)
    grid_geom = registry.geometry[GRID]
    x0, y0, x1, y1 = grid_geom.bounds
    service.raise_alert(make_alert("f1", lon=x0 + 0.0005, lat=y0 + 0.0005))
    far = service.file_complaint(make_complaint("far", x1 - 0.0005, y1 - 0.0005, minutes=5))
    # the grid is ~600 m square: the far corner is ~700 m away, beyond 300 m
    assert far.linked is False
    with pytest.raises(UnknownLocation):
        service.file_complaint(make_complaint("nowhere", 10.0, 10.0))


def test_operator_actions_audit_and_breaches(service: TicketService, clock: Clock) -> None:
    tid = service.raise_alert(make_alert("o1")).ticket_id or ""
    clock.advance(minutes=20)  # acknowledge target is 15 min
    t = service.acknowledge(tid, "op:li", "on my way")
    assert (t.state, t.ack_breached) == ("acknowledged", True)
    with pytest.raises(IllegalTransition):
        service.acknowledge(tid, "op:li")
    service.assign(tid, "inspector-9", "op:li", "closer")
    t = service.dispatch(tid, "op:li", "crew sent")
    assert t.dispatched_at == clock.now
    with pytest.raises(TicketError):
        service.resolve(tid, "op:li", closing_code="bogus")
    t = service.resolve(tid, "op:li", closing_code="real", reason="pumped")
    assert (t.state, t.closing_code, t.resolve_breached) == ("resolved", "real", False)
    with pytest.raises(IllegalTransition):
        service.mark_false_alarm(tid, "op:li")
    with pytest.raises(TicketNotFound):
        service.acknowledge("TK-NOPE", "op:li")
    with service.read_session() as s:
        d = ticket_detail(s, tid)
    assert d is not None
    actions = [(a["action"], a["actor"]) for a in d["audit"]]
    assert actions == [
        ("create", "system"),
        ("acknowledge", "op:li"),
        ("assign", "op:li"),
        ("dispatch", "op:li"),
        ("resolve", "op:li"),
    ]
    assert d["audit"][1]["reason"] == "on my way"


def test_sweep_escalates_reminds_and_records_breaches(service: TicketService, clock: Clock) -> None:
    tid = service.raise_alert(make_alert("s1")).ticket_id or ""
    assert service.sweep(T0 + timedelta(minutes=6)) == {
        "escalations": 0,
        "reminders": 1,
        "breaches": 0,
    }
    assert service.sweep(T0 + timedelta(minutes=7))["reminders"] == 0  # 5 min spacing
    got = service.sweep(T0 + timedelta(minutes=16))
    assert got == {"escalations": 1, "reminders": 0, "breaches": 1}
    with service.read_session() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        assert (t.escalation_stage, t.assignee) == (1, f"{GRID}/head")
    assert service.sweep(T0 + timedelta(minutes=17))["reminders"] == 0  # escalation reminded
    assert service.sweep(T0 + timedelta(minutes=21))["reminders"] == 1
    service.sweep(T0 + timedelta(minutes=31))
    with service.read_session() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        assert (t.escalation_stage, t.assignee) == (2, "D01-S01/office")
    got = service.sweep(T0 + timedelta(minutes=61))
    assert got["escalations"] == 1
    assert got["breaches"] == 1  # resolve target (45 min) missed
    assert service.sweep(T0 + timedelta(minutes=62))["breaches"] == 0  # recorded once


def test_precision_and_kpis(service: TicketService, clock: Clock) -> None:
    ids = []
    for i, rv in enumerate(["r1", "r1", "r2"]):
        out = service.raise_alert(
            make_alert(f"p{i}", site=f"s{i}", rule_version=rv, evidence={"device_id": "wl-00002"})
        )
        ids.append(out.ticket_id or "")
    clock.advance(minutes=10)
    service.acknowledge(ids[0], "op")
    service.dispatch(ids[0], "op")
    clock.advance(minutes=20)
    service.resolve(ids[0], "op", "real")
    service.mark_false_alarm(ids[1], "op", "camera glare")
    service.resolve(service.acknowledge(ids[2], "op").id, "op", "already_fixed")
    with service.read_session() as s:
        rep = precision_report(s)
        k = kpis(s)
    assert rep["by_rule"]["r1"]["precision"] == 0.5
    assert rep["by_rule"]["r2"]["precision"] == 1.0
    assert rep["by_sensor"]["wl-00002"]["n"] == 3
    assert rep["overall"]["precision"] == pytest.approx(0.6667)
    g = k["grids"][GRID]
    assert g["tickets"] == 3
    assert g["mttr_min"] == pytest.approx((30 + 30) / 2)
    assert g["mtta_min"] == pytest.approx((10 + 30) / 2)


def test_near_miss_log(service: TicketService) -> None:
    nid = service.record_near_miss(
        incident_key=f"{GRID}:waterlogging:site-a",
        grid_id=GRID,
        category="waterlogging",
        ts=T0,
        why_not="p=0.38 below 0.5",
        score=0.38,
        threshold=0.5,
    )
    assert nid > 0


@pytest.mark.slow
def test_concurrent_raises_make_one_ticket(service: TicketService, engine: Engine) -> None:
    n = 24
    barrier = threading.Barrier(8)

    def raise_one(i: int) -> str | None:
        if i < 8:
            barrier.wait()
        # 20 distinct alerts and 4 re-deliveries of one alert id
        alert_id = f"cc{i}" if i < 20 else "cc0"
        return service.raise_alert(make_alert(alert_id, minutes=i % 3)).ticket_id

    with ThreadPoolExecutor(max_workers=8) as pool:
        ticket_ids = list(pool.map(raise_one, range(n)))
    assert len(set(ticket_ids)) == 1
    with session_factory(engine)() as s:
        active = s.scalar(select(func.count()).select_from(Ticket)) or 0
        ev = Counter(s.scalars(select(Evidence.alert_id)))
    assert active == 1
    assert len(ev) == 20
    assert set(ev.values()) == {1}


def test_batch_raise_matches_one_by_one(service: TicketService, engine: Engine) -> None:
    batch = [
        make_alert("bt1", "forecast", site="x"),
        make_alert("bt2", "observed", site="x", minutes=5),
        make_alert("bt2", "observed", site="x", minutes=5),  # re-delivered inside the batch
        make_alert("bt3", "observed", site="y"),
        make_alert("bt4", "clear", site="y", minutes=9),
        make_alert("bt5", "clear", site="z"),
        make_alert("bt5", "clear", site="z"),
    ]
    out = service.raise_alerts(batch)
    assert [o.action for o in out] == [
        "create", "promote", "duplicate", "create", "auto_resolve", "ignore", "duplicate"
    ]  # fmt: skip
    assert out[0].ticket_id == out[1].ticket_id == out[2].ticket_id
    assert count(engine, Evidence) == 4
    assert count(engine, AuditRow) == count(engine, OutboxRow)


async def test_async_wrappers(service: TicketService) -> None:
    one = await service.araise_alert(make_alert("as1"))
    many = await service.araise_alerts([make_alert("as2"), make_alert("as1")])
    assert [m.ticket_id for m in many] == [one.ticket_id, one.ticket_id]
    assert many[1].duplicate


@pytest.mark.slow
def test_concurrent_complaints_open_one_reactive_ticket(
    service: TicketService, registry: Registry
) -> None:
    dev = registry.devices["bk-00001"].device
    barrier = threading.Barrier(6)

    def file(i: int) -> str:
        barrier.wait()
        c = make_complaint(f"cc-{i}", dev.lon, dev.lat, minutes=i, category="bike_overflow")
        return service.file_complaint(c).ticket_id

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(file, range(6)))
    assert len(set(ids)) == 1


def test_sweep_records_resolve_breach_of_acknowledged_ticket(
    service: TicketService, clock: Clock
) -> None:
    tid = service.raise_alert(make_alert("sb1")).ticket_id or ""
    clock.advance(minutes=5)
    service.acknowledge(tid, "op")
    assert service.sweep(T0 + timedelta(minutes=44))["breaches"] == 0
    assert service.sweep(T0 + timedelta(minutes=46)) == {
        "escalations": 0,
        "reminders": 0,
        "breaches": 1,
    }
    assert service.sweep(T0 + timedelta(minutes=50))["breaches"] == 0
    with service.read_session() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        assert (t.ack_breached, t.resolve_breached) == (False, True)


def _raise_in_process(db_url: str, registry: Registry, worker: int, start: object) -> None:
    """A separate worker process (own engine), as several stream workers would be."""
    from tickets.config import TicketsConfig
    from tickets.db import make_engine

    service = TicketService(make_engine(db_url), TicketsConfig(db_url=db_url), registry)
    start.wait()  # type: ignore[attr-defined]
    for i in range(8):
        service.raise_alert(make_alert(f"mp-{worker}-{i}", severity="major" if i else "minor"))


@pytest.mark.slow
def test_concurrent_worker_processes_make_one_ticket(
    service: TicketService, engine: Engine, db_url: str, registry: Registry
) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_raise_in_process, args=(db_url, registry, w, start)) for w in range(4)
    ]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with session_factory(engine)() as s:
        tickets = list(s.scalars(select(Ticket)))
        assert len(tickets) == 1
        assert tickets[0].severity == "major"
        assert s.scalar(select(func.count()).select_from(Evidence)) == 32
    assert count(engine, AuditRow) == count(engine, OutboxRow)


def test_a_late_filed_call_links_to_the_ticket_open_when_it_was_made(
    service: TicketService, registry: Registry
) -> None:
    """The hotline feed may lag the sensors: a call made while the proactive ticket was
    open, filed after the water receded and the ticket auto-resolved, is pre-empted by
    that ticket — not a second, reactive one. A call made after it closed is new."""
    dev = registry.devices["wl-00001"].device
    grid = registry.devices["wl-00001"].grid_id
    first = service.raise_alert(make_alert("l1", "observed", grid=grid, lon=dev.lon, lat=dev.lat))
    service.raise_alert(make_alert("l2", "clear", grid=grid, lon=dev.lon, lat=dev.lat, minutes=60))
    with service.read_session() as s:
        t = s.get(Ticket, first.ticket_id)
        assert t is not None and t.state == "auto_resolved"
    during = service.file_complaint(make_complaint("late", dev.lon, dev.lat, minutes=30))
    assert (during.ticket_id, during.pre_empted, during.lead_min) == (first.ticket_id, True, 30.0)
    after = service.file_complaint(make_complaint("after", dev.lon, dev.lat, minutes=90))
    assert after.linked is False and after.ticket_id != first.ticket_id


def test_a_call_links_to_the_nearest_active_ticket_of_its_grid(
    service: TicketService, registry: Registry
) -> None:
    x0, y0, _, _ = registry.geometry[GRID].bounds
    near_a = (x0 + 0.0005, y0 + 0.0005)
    near_b = (x0 + 0.0030, y0 + 0.0030)
    a = service.raise_alert(make_alert("n1", site="site-a", lon=near_a[0], lat=near_a[1]))
    b = service.raise_alert(
        make_alert("n2", site="site-b", lon=near_b[0], lat=near_b[1], minutes=1)
    )
    call = service.file_complaint(make_complaint("nb", near_b[0], near_b[1], minutes=5))
    assert call.ticket_id == b.ticket_id != a.ticket_id


def test_an_alert_older_than_its_incidents_closure_does_not_reopen_it(
    service: TicketService,
) -> None:
    """Two stream workers handing a partition over can deliver an incident's alerts out
    of order: one stamped before the incident was cleared is evidence for the closed
    ticket, not a second ticket; a later one is a new occurrence."""
    first = service.raise_alert(make_alert("o-1", "observed", minutes=0))
    service.raise_alert(make_alert("o-2", "clear", minutes=10))
    late = service.raise_alert(make_alert("o-3", "observed", minutes=5))
    assert (late.action, late.ticket_id) == ("late", first.ticket_id)
    with service.read_session() as s:
        t = s.get(Ticket, first.ticket_id)
        assert t is not None and t.state == "auto_resolved"
    again = service.raise_alert(make_alert("o-4", "observed", minutes=20))
    assert again.action == "create" and again.ticket_id != first.ticket_id
