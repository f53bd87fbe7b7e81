"""Ticket-side drills: the ticket API killed under load, the outbox relay killed
mid-publication, and the tickets' PostgreSQL restarted under the stream worker."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from gridwatch.contracts import Alert, Category, Complaint, Severity, incident_key
from gridwatch.demo import DemoProcs
from gridwatch.drills import Checks, DrillContext, DrillResult, drill
from gridwatch.drills.harness import (
    Supervisor,
    alive,
    check_every_reading,
    influx_rows,
    log_dir,
    run_storm,
)
from gridwatch.kafka import read_topic
from gridwatch.pgcluster import PgCluster
from gridwatch.procs import Child, wait_until
from gridwatch.registry import Registry
from gridwatch.stack import free_port

INCIDENTS = 40
ALERTS_PER_INCIDENT = 3
COMPLAINTS = 60


def _city(ctx: DrillContext) -> Registry:
    from simulators.city import generate_city

    city = generate_city(ctx.settings.sim.seed, "small")
    city.write(ctx.settings.registry_dir)
    return Registry.from_dir(ctx.settings.registry_dir)


def _grids(reg: Registry) -> list[str]:
    return sorted(g.id for g in reg.grids.values() if g.level == "grid")


def _alert(reg: Registry, grid: str, alert_id: str, site: str, ts: datetime) -> Alert:
    return Alert(
        alert_id=alert_id,
        incident_key=incident_key(grid, Category.WATERLOGGING, site),
        kind="observed",
        category=Category.WATERLOGGING,
        severity=Severity.MINOR,
        grid_id=grid,
        district_id=reg.ancestor(grid, "district") or grid,
        site=site,
        ts=ts,
        probability=1.0,
        why="drill alert",
        rule_version="drill",
    )


def _complaint(reg: Registry, grid: str, complaint_id: str, ts: datetime) -> Complaint:
    point = reg.geometry[grid].representative_point()
    return Complaint(
        complaint_id=complaint_id,
        ts=ts,
        category=Category.WATERLOGGING,
        lon=point.x,
        lat=point.y,
        grid_id=grid,
        description="drill: water on the road",
        source="hotline",
    )


class _Client:
    """Sends each request until the server answers it (retrying through a dead server)."""

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.http = httpx.Client(base_url=base, headers=headers, timeout=5)
        self.retries = 0
        self.conflicts_after_retry = 0

    def post(self, path: str, body: dict[str, Any], deadline_s: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + deadline_s
        attempt = 0
        while True:
            attempt += 1
            try:
                r = self.http.post(path, json=body)
                if r.status_code == 409 and attempt > 1:
                    self.conflicts_after_retry += 1  # the first try did it before the kill
                    return {}
                if r.status_code < 500:
                    r.raise_for_status()
                    return dict(r.json())
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"POST {path} not answered in {deadline_s:.0f} s")
            self.retries += 1
            time.sleep(0.2)


@drill(
    "tickets-api-kill",
    f"kill -9 of `gridwatch tickets serve` while {INCIDENTS * ALERTS_PER_INCIDENT} alerts, "
    f"{COMPLAINTS} complaints and acknowledgements are posted (clients retry): after the "
    "restart every alert and complaint is recorded once, one ticket per incident, no "
    "acknowledgement lost; the API answers again within 30 s",
)
def tickets_api_kill(ctx: DrillContext) -> DrillResult:
    from tickets.config import ensure_dev_tokens, load_config

    reg = _city(ctx)
    ensure_dev_tokens(ctx.settings.stack.var_dir)
    cfg = load_config(ctx.settings)
    token = {t.role: t.token.get_secret_value() for t in cfg.tokens}
    port = free_port()
    args = ["tickets", "serve", "--registry", str(ctx.settings.registry_dir), "--port", str(port)]
    logs = log_dir(ctx.settings)
    base = f"http://127.0.0.1:{port}"
    server = [Child("tickets-api", args, ctx.settings, logs).start()]
    state: dict[str, float] = {}

    def healthy() -> bool:
        server[0].check_alive()
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill_and_restart() -> None:
        time.sleep(0.03)  # land inside a request
        server[0].kill()
        state["killed"] = time.monotonic()
        server[0] = Child("tickets-api-restarted", args, ctx.settings, logs).start()
        wait_until(healthy, 60, what="the restarted ticket API")
        state["back_s"] = time.monotonic() - state["killed"]

    grids = _grids(reg)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    admin = _Client(base, {"Authorization": f"Bearer {token['admin']}"})
    operator = _Client(base, {"Authorization": f"Bearer {token['operator']}"})
    killer: threading.Thread | None = None
    requests = 0
    acked: set[str] = set()
    try:
        wait_until(healthy, 60, what="the ticket API")
        total = INCIDENTS * (ALERTS_PER_INCIDENT + 1) + COMPLAINTS
        for k in range(INCIDENTS):
            grid = grids[k % len(grids)]
            ticket_id = None
            for j in range(ALERTS_PER_INCIDENT):
                a = _alert(reg, grid, f"drill-{k}-{j}", f"s{k}", t0 + timedelta(minutes=j))
                out = admin.post("/api/v1/alerts", a.model_dump(mode="json"))
                ticket_id = out.get("ticket_id") or ticket_id
                requests += 1
                if killer is None and requests >= total // 2:
                    killer = threading.Thread(target=kill_and_restart, name="api-killer")
                    killer.start()
            if ticket_id is not None:
                operator.post(f"/api/v1/tickets/{ticket_id}/acknowledge", {"reason": "drill"})
                acked.add(ticket_id)
                requests += 1
            if k < COMPLAINTS:
                c = _complaint(reg, grid, f"drill-c{k}", t0 + timedelta(minutes=5))
                operator.post("/api/v1/complaints", c.model_dump(mode="json"))
                requests += 1
        for n in range(INCIDENTS, COMPLAINTS):
            grid = grids[n % len(grids)]
            c = _complaint(reg, grid, f"drill-c{n}", t0 + timedelta(minutes=5))
            operator.post("/api/v1/complaints", c.model_dump(mode="json"))
        if killer is not None:
            killer.join()
    finally:
        server[0].stop()
    return _judge_api(ctx, state, admin, operator, acked, killer is not None)


def _judge_api(
    ctx: DrillContext,
    state: dict[str, float],
    admin: _Client,
    operator: _Client,
    acked: set[str],
    killed: bool,
) -> DrillResult:
    from tickets.db import make_engine, session_factory
    from tickets.models import ComplaintRow, SeenAlert, Ticket

    engine = make_engine(ctx.settings.tickets.db_url)
    try:
        with session_factory(engine)() as s:
            tickets = list(s.scalars(select(Ticket)))
            seen = int(s.scalar(select(func.count()).select_from(SeenAlert)) or 0)
            complaints = list(s.scalars(select(ComplaintRow)))
    finally:
        engine.dispose()
    checks = Checks()
    checks.require(killed and "back_s" in state, "the API was never killed and restarted")
    per_incident = Counter(t.incident_key for t in tickets if t.source != "complaint")
    doubles = [k for k, n in per_incident.items() if n > 1]
    checks.require(len(per_incident) == INCIDENTS, f"{len(per_incident)} incidents ticketed")
    checks.require(not doubles, f"incidents with two tickets: {doubles[:3]}")
    checks.require(seen == INCIDENTS * ALERTS_PER_INCIDENT, f"{seen} alerts recorded")
    checks.require(len(complaints) == COMPLAINTS, f"{len(complaints)} complaints recorded")
    states = {t.id: t.state for t in tickets}
    not_acked = [i for i in acked if states.get(i) != "acknowledged"]
    checks.require(not not_acked, f"acknowledgements lost: {not_acked[:3]}")
    back_s = state.get("back_s", float("inf"))
    checks.require(back_s < 30, f"API back after {back_s:.1f} s")
    return checks.result(
        "tickets-api-kill",
        "",
        {
            "alerts_sent": INCIDENTS * ALERTS_PER_INCIDENT,
            "alerts_recorded": seen,
            "tickets": len(tickets),
            "duplicate_tickets": len(doubles),
            "complaints_sent": COMPLAINTS,
            "complaints_recorded": len(complaints),
            "acknowledged": len(acked) - len(not_acked),
            "client_retries": admin.retries + operator.retries,
            "conflicts_after_retry": admin.conflicts_after_retry + operator.conflicts_after_retry,
            "api_back_s": round(back_s, 2),
        },
    )


RELAY_ALERTS = 1200


@drill(
    "relay-kill",
    f"kill -9 of `gridwatch tickets relay --to kafka,influx` a third into {RELAY_ALERTS} "
    "tickets' outbox rows: after a restart every row is published; InfluxDB holds each "
    "event once (same series and time overwrite); gw.tickets may repeat a record but its "
    "event_id header lets consumers drop it: distinct event ids = outbox rows",
)
def relay_kill(ctx: DrillContext) -> DrillResult:
    from tickets.config import TicketsConfig
    from tickets.models import OutboxRow
    from tickets.service import TicketService

    reg = _city(ctx)
    cfg = TicketsConfig(db_url=ctx.settings.tickets.db_url, var_dir=ctx.work_dir)
    tick = itertools.count()
    t0 = datetime(2026, 7, 1, tzinfo=UTC)
    # one second per clock read: no two ticket events share a series and millisecond
    service = TicketService.from_url(
        cfg.db_url, reg, cfg, clock=lambda: t0 + timedelta(seconds=next(tick))
    )
    grids = _grids(reg)
    for i in range(RELAY_ALERTS):
        grid = grids[i % len(grids)]
        # distinct event times: a ticket point's series is (grid, category, severity,
        # state, event), so two tickets' events in one grid and millisecond would overwrite
        service.raise_alert(_alert(reg, grid, f"relay-{i}", f"r{i}", t0 + timedelta(seconds=i)))
    with service.read_session() as s:
        rows = int(s.scalar(select(func.count()).select_from(OutboxRow)) or 0)
        ids = set(s.scalars(select(OutboxRow.id)))

    def published() -> int:
        with service.read_session() as s:
            q = select(func.count()).where(OutboxRow.published_at.is_not(None))
            return int(s.scalar(q) or 0)

    conf = ctx.work_dir / "tickets.toml"
    conf.write_text("relay_batch = 20\n", encoding="utf-8")
    args = ["tickets", "relay", "--to", "kafka,influx", "--tickets-config", str(conf)]
    logs = log_dir(ctx.settings)
    relay = Child("relay", args, ctx.settings, logs).start()
    try:
        at_kill = wait_until(
            lambda: alive(relay) and published() >= rows // 3 and published(),
            60,
            interval_s=0.01,
            what="a third of the outbox published",
        )
        relay.kill()
        relay = Child("relay-restarted", args, ctx.settings, logs).start()
        started = time.monotonic()
        wait_until(
            lambda: alive(relay) and published() == rows,
            90,
            interval_s=0.2,
            what="the outbox drained after the restart",
        )
        drained_s = time.monotonic() - started
    finally:
        relay.stop()
    checks = Checks()
    seqs = [int(r["seq"]) for r in influx_rows(ctx.settings, "SELECT seq, grid FROM ticket")]
    checks.require(set(seqs) == ids, f"InfluxDB has {len(set(seqs))} of {rows} events")
    checks.require(len(seqs) == len(set(seqs)), f"{len(seqs) - len(set(seqs))} doubled points")
    records = asyncio.run(read_topic(ctx.settings.kafka, ctx.settings.kafka.topic("tickets")))
    event_ids = [dict(r.headers).get("event_id") for r in records]
    checks.require(None not in event_ids, "a gw.tickets record without an event_id header")
    distinct = len(set(event_ids))
    checks.require(distinct == rows, f"gw.tickets has {distinct} distinct events of {rows}")
    return checks.result(
        "relay-kill",
        "",
        {
            "outbox_rows": rows,
            "published_at_kill": at_kill,
            "influx_points": len(seqs),
            "kafka_records": len(records),
            "kafka_distinct_events": distinct,
            "kafka_repeats_dropped_by_event_id": len(records) - distinct,
            "drained_after_restart_s": round(drained_s, 2),
        },
    )


PG_DOWN_S = 8.0
PG_STRIKE_AT = 4000


@drill(
    "postgres-restart",
    f"the tickets' PostgreSQL (a private cluster) crashes (pg_ctl -m immediate) late in the "
    f"storm and is back after {PG_DOWN_S:.0f} s: every alert on gw.alerts is recorded in the "
    "store, no incident gets two tickets, the stream worker carries on without a restart, "
    "the outbox drains (the relay is restarted by a supervisor if it exits; counted), every "
    "published reading is in InfluxDB",
)
def postgres_restart(ctx: DrillContext) -> DrillResult:
    from tickets.db import make_engine, migrate, session_factory
    from tickets.models import SeenAlert

    with PgCluster() as pg:
        url = pg.create_database("gw_tickets")
        settings = ctx.settings.model_copy(
            update={"tickets": ctx.settings.tickets.model_copy(update={"db_url": url})}
        )
        engine = make_engine(url)
        migrate(engine)
        state: dict[str, Any] = {}
        outage: list[threading.Thread] = []

        def crash_and_restart() -> None:
            pg.stop("immediate")
            started = time.monotonic()
            time.sleep(PG_DOWN_S)
            pg.start()
            state["down_s"] = time.monotonic() - started

        supervisor = Supervisor(workers=True, relay=True)

        def chaos(published: int, procs: DemoProcs) -> None:
            supervisor.watch(procs)
            if not outage and published >= PG_STRIKE_AT:
                state["struck_at"] = published
                outage.append(threading.Thread(target=crash_and_restart, name="pg-crash"))
                outage[0].start()

        try:
            sub = DrillContext(ctx.stack, settings, ctx.work_dir)
            with supervisor:
                result = run_storm(sub, chaos, settings=settings)
        finally:
            for t in outage:
                t.join()
        checks = Checks()
        checks.require("down_s" in state, "PostgreSQL was never restarted")
        figures = check_every_reading(checks, settings, result)
        alerts = asyncio.run(read_topic(settings.kafka, settings.kafka.topic("alerts")))
        alert_ids = {_alert_id(r.value) for r in alerts}
        with session_factory(engine)() as s:
            seen = set(s.scalars(select(SeenAlert.alert_id)))
        engine.dispose()
        lost = alert_ids - seen
        checks.require(
            supervisor.restarts["worker"] == 0,
            f"the stream worker exited {supervisor.restarts['worker']} times",
        )
        checks.require(bool(alert_ids), "the storm raised no alert")
        checks.require(not lost, f"{len(lost)} alerts on gw.alerts never reached the store")
        figures.update(
            alerts_on_kafka=len(alert_ids),
            alerts_recorded=len(alert_ids & seen),
            alerts_lost=len(lost),
            pg_down_s=round(state.get("down_s", 0.0), 1),
            struck_after_messages=state.get("struck_at"),
            worker_restarts=supervisor.restarts["worker"],
            relay_restarts=supervisor.restarts["relay"],
        )
        return checks.result("postgres-restart", "", figures)


def _alert_id(raw: bytes) -> str:
    from gridwatch.contracts import parse_record

    return parse_record(Alert, raw).alert_id
