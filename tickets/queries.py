"""Read side of the ticket store: lists, detail with evidence and audit, KPIs, precision.

Functions take a session (read-only is enough) and return plain JSON-ready dicts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from tickets import rules
from tickets.models import (
    AuditRow,
    ComplaintRow,
    Evidence,
    NearMiss,
    OutboxRow,
    StormPeriod,
    Ticket,
)

TICKET_FIELDS = (
    "id", "incident_key", "category", "severity", "state", "source", "grid_id",
    "district_id", "micro_grid_id", "site", "lon", "lat", "why", "probability",
    "expected_at", "created_at", "opened_at", "acknowledged_at", "dispatched_at",
    "closed_at", "ack_due", "resolve_due", "ack_breached", "resolve_breached",
    "escalation_stage", "assignee", "agency", "closing_code", "rule_version",
    "model_version", "evidence_count", "updated_at",
)  # fmt: skip


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


def ticket_dict(t: Ticket) -> dict[str, Any]:
    return {f: _iso(getattr(t, f)) for f in TICKET_FIELDS}


@dataclass(frozen=True)
class TicketFilter:
    state: tuple[str, ...] = ()
    grid_id: str | None = None
    category: str | None = None
    severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None
    active: bool | None = None
    limit: int = 100
    offset: int = 0


def _filtered(f: TicketFilter) -> Select[Ticket]:
    q = select(Ticket)
    if f.state:
        q = q.where(Ticket.state.in_(f.state))
    if f.active is not None:
        q = q.where(
            Ticket.state.in_(rules.ACTIVE_STATES)
            if f.active
            else Ticket.state.in_(rules.TERMINAL_STATES)
        )
    if f.grid_id:
        q = q.where(Ticket.grid_id == f.grid_id)
    if f.category:
        q = q.where(Ticket.category == f.category)
    if f.severity:
        q = q.where(Ticket.severity == f.severity)
    if f.since:
        q = q.where(Ticket.created_at >= f.since)
    if f.until:
        q = q.where(Ticket.created_at < f.until)
    if f.q:
        q = q.where(
            or_(
                Ticket.id.icontains(f.q, autoescape=True),
                Ticket.incident_key.icontains(f.q, autoescape=True),
                Ticket.why.icontains(f.q, autoescape=True),
            )
        )
    return q


def list_tickets(s: Session, f: TicketFilter) -> dict[str, Any]:
    total = s.scalar(select(func.count()).select_from(_filtered(f).subquery())) or 0
    rows = s.scalars(
        _filtered(f).order_by(Ticket.created_at.desc(), Ticket.id).limit(f.limit).offset(f.offset)
    )
    return {"total": total, "items": [ticket_dict(t) for t in rows]}


def queue(s: Session, limit: int = 200) -> list[dict[str, Any]]:
    """Active tickets in watch-floor order (severity, then nearest due time)."""
    rows = list(s.scalars(select(Ticket).where(Ticket.state.in_(rules.ACTIVE_STATES))))
    rows.sort(key=lambda t: rules.queue_sort_key(t.severity, t.state, t.ack_due, t.resolve_due))
    return [ticket_dict(t) for t in rows[:limit]]


QueueGroup = Literal["none", "grid", "auto"]
# what a grid row of the grouped queue shows of each of its tickets
ROW_FIELDS = (
    "id", "incident_key", "category", "severity", "state", "grid_id", "site", "created_at",
    "ack_due", "resolve_due", "expected_at", "ack_breached", "resolve_breached", "assignee",
)  # fmt: skip


def queue_view(s: Session, group: QueueGroup, now: datetime, limit: int = 200) -> dict[str, Any]:
    """The watch-floor queue, flat or rolled up per grid.

    ``group="grid"``: every active ticket in a grid row; ``"auto"`` (the console): the
    tickets of districts in storm mode (an open storm period) in grid rows, the others
    flat; ``"none"``: flat. ``limit`` bounds the flat items and the grid rows each."""
    storms = storm_periods(s, active=True)
    in_storm = {p["district_id"] for p in storms}
    rows = list(s.scalars(select(Ticket).where(Ticket.state.in_(rules.ACTIVE_STATES))))
    rows.sort(key=lambda t: rules.queue_sort_key(t.severity, t.state, t.ack_due, t.resolve_due))
    if group == "none":
        grouped: list[Ticket] = []
    elif group == "grid":
        grouped = rows
    else:
        grouped = [t for t in rows if t.district_id in in_storm]
    ids = {t.id for t in grouped}
    by_id = {t.id: t for t in grouped}
    groups = []
    for r in rules.roll_up(grouped, now, in_storm)[:limit]:
        groups.append(
            {
                "grid_id": r.grid_id,
                "district_id": r.district_id,
                "storm": r.storm,
                "tickets": r.tickets,
                "counts": r.counts,
                "worst_severity": r.worst_severity,
                "earliest_due": _iso(r.earliest_due),
                "breached": r.breached,
                "oldest_at": _iso(r.oldest_at),
                "ticket_ids": list(r.ticket_ids),
                "items": [
                    {f: _iso(getattr(by_id[i], f)) for f in ROW_FIELDS} for i in r.ticket_ids
                ],
            }
        )
    return {
        "group": group,
        "storm_districts": sorted(in_storm),
        "storms": storms,
        "groups": groups,
        "items": [ticket_dict(t) for t in rows if t.id not in ids][:limit],
    }


def storm_dict(p: StormPeriod) -> dict[str, Any]:
    end = p.ended_at
    return {
        "id": p.id,
        "district_id": p.district_id,
        "active": end is None,
        "started_at": _iso(p.started_at),
        "ended_at": _iso(end),
        "duration_min": None
        if end is None
        else round((end - p.started_at).total_seconds() / 60, 1),
        "peak_share": p.peak_share,
        "alert_ids": list(p.alert_ids),
    }


def storm_periods(
    s: Session,
    *,
    active: bool | None = None,
    district_id: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Storm periods, newest first: ``active`` (still going on) or ended ones, of one
    district, or ending at or after ``since``."""
    q = select(StormPeriod)
    if active is not None:
        q = q.where(StormPeriod.ended_at.is_(None) if active else StormPeriod.ended_at.is_not(None))
    if district_id:
        q = q.where(StormPeriod.district_id == district_id)
    if since:
        q = q.where(or_(StormPeriod.ended_at.is_(None), StormPeriod.ended_at >= since))
    q = q.order_by(StormPeriod.started_at.desc(), StormPeriod.id.desc()).limit(limit)
    return [storm_dict(p) for p in s.scalars(q)]


def ticket_detail(s: Session, ticket_id: str) -> dict[str, Any] | None:
    t = s.get(Ticket, ticket_id)
    if t is None:
        return None
    out = ticket_dict(t)
    ev = s.scalars(
        select(Evidence).where(Evidence.ticket_id == t.id).order_by(Evidence.ts, Evidence.id)
    )
    out["evidence"] = [
        {
            "alert_id": e.alert_id,
            "kind": e.kind,
            "ts": _iso(e.ts),
            "severity": e.severity,
            "probability": e.probability,
            "expected_at": _iso(e.expected_at),
            "why": e.why,
            "rule_version": e.rule_version,
            "model_version": e.model_version,
            "device_ids": e.device_ids,
            "payload": e.payload,
        }
        for e in ev
    ]
    audit = s.scalars(select(AuditRow).where(AuditRow.ticket_id == t.id).order_by(AuditRow.id))
    out["audit"] = [
        {
            "ts": _iso(a.ts),
            "actor": a.actor,
            "action": a.action,
            "from_state": a.from_state,
            "to_state": a.to_state,
            "reason": a.reason,
            "detail": a.detail,
        }
        for a in audit
    ]
    comps = s.scalars(select(ComplaintRow).where(ComplaintRow.ticket_id == t.id))
    out["complaints"] = [complaint_dict(c) for c in comps]
    out["sparkline"] = sparkline(out["evidence"])
    out["forecast"] = forecast_curve(out["evidence"])
    return out


def forecast_curve(evidence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest forecast in the evidence as ``{ts, q10, q50, q90}`` points."""
    for e in reversed(evidence):
        fc = e["payload"].get("forecast") if isinstance(e["payload"], dict) else None
        if not isinstance(fc, list):
            continue
        base = datetime.fromisoformat(e["ts"])
        points = []
        for f in fc[:48]:
            if not isinstance(f, dict) or not isinstance(f.get("horizon_min"), int | float):
                continue
            point: dict[str, Any] = {
                "ts": (base + timedelta(minutes=float(f["horizon_min"]))).isoformat()
            }
            for q in ("q10", "q50", "q90"):
                v = f.get(q)
                point[q] = float(v) if isinstance(v, int | float) else None
            points.append(point)
        return sorted(points, key=lambda p: str(p["ts"]))
    return []


def sparkline(evidence: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points ``{ts, value}`` for the console: readings in the evidence, else probability."""
    points: list[dict[str, Any]] = []
    for e in evidence:
        readings = e["payload"].get("readings") if isinstance(e["payload"], dict) else None
        if isinstance(readings, list):
            for r in readings[:500]:
                if isinstance(r, dict) and isinstance(r.get("value"), int | float):
                    points.append({"ts": str(r.get("ts", e["ts"])), "value": float(r["value"])})
        elif e["probability"] is not None:
            points.append({"ts": e["ts"], "value": e["probability"]})
    points.sort(key=lambda p: p["ts"])
    return points[-200:]


def complaint_dict(c: ComplaintRow) -> dict[str, Any]:
    return {
        "complaint_id": c.id,
        "ts": _iso(c.ts),
        "category": c.category,
        "lon": c.lon,
        "lat": c.lat,
        "grid_id": c.grid_id,
        "description": c.description,
        "source": c.source,
        "ticket_id": c.ticket_id,
        "linked": c.linked,
        "pre_empted": c.pre_empted,
        "lead_min": c.lead_min,
        "created_at": _iso(c.created_at),
    }


def _kpi_block(
    tickets: list[Ticket], complaints: list[ComplaintRow], breaches: int
) -> dict[str, Any]:
    n_pre = sum(1 for c in complaints if c.pre_empted)
    return {
        "tickets": len(tickets),
        "open": sum(1 for t in tickets if t.state in ("open", "acknowledged", "dispatched")),
        "pre_alerts": sum(1 for t in tickets if t.state == "pre_alert"),
        "sla_breaches": breaches,
        "complaints": len(complaints),
        "pre_empted": n_pre,
        "pre_emption_rate": round(n_pre / len(complaints), 4) if complaints else None,
        "median_lead_min": rules.median_or_none(c.lead_min for c in complaints),
        "mtta_min": rules.mean_or_none(
            rules.minutes_between(t.opened_at, t.acknowledged_at) for t in tickets
        ),
        "mttr_min": rules.mean_or_none(
            rules.minutes_between(t.opened_at, t.closed_at)
            for t in tickets
            if t.state == "resolved"
        ),
    }


def kpis(
    s: Session, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """Overall and per-grid KPIs over tickets and complaints created in [since, until)."""
    tq = select(Ticket)
    cq = select(ComplaintRow)
    if since:
        tq, cq = tq.where(Ticket.created_at >= since), cq.where(ComplaintRow.ts >= since)
    if until:
        tq, cq = tq.where(Ticket.created_at < until), cq.where(ComplaintRow.ts < until)
    tickets = list(s.scalars(tq))
    complaints = list(s.scalars(cq))
    by_grid_t: dict[str, list[Ticket]] = defaultdict(list)
    by_grid_c: dict[str, list[ComplaintRow]] = defaultdict(list)
    for t in tickets:
        by_grid_t[t.grid_id].append(t)
    for c in complaints:
        by_grid_c[c.grid_id].append(c)

    def breaches(ts: list[Ticket]) -> int:
        return sum(int(t.ack_breached) + int(t.resolve_breached) for t in ts)

    grids = sorted(set(by_grid_t) | set(by_grid_c))
    return {
        "since": _iso(since),
        "until": _iso(until),
        "overall": _kpi_block(tickets, complaints, breaches(tickets)),
        "grids": {g: _kpi_block(by_grid_t[g], by_grid_c[g], breaches(by_grid_t[g])) for g in grids},
    }


def precision_report(s: Session) -> dict[str, Any]:
    """Outcome feedback: precision per rule version, per model version and per sensor."""
    rows = list(
        s.execute(
            select(Ticket.id, Ticket.closing_code, Ticket.rule_version, Ticket.model_version).where(
                Ticket.closing_code.is_not(None), Ticket.source != "complaint"
            )
        )
    )
    closed: list[tuple[str, str, str, str]] = [
        (tid, code or "", rv, mv) for tid, code, rv, mv in rows
    ]
    codes = {tid: code for tid, code, _, _ in closed}
    sensors: list[tuple[str, str]] = []
    if codes:
        seen: set[tuple[str, str]] = set()
        for tid, devs in s.execute(
            select(Evidence.ticket_id, Evidence.device_ids).where(
                Evidence.ticket_id.in_(list(codes))
            )
        ):
            for d in devs or []:
                if (tid, d) not in seen:
                    seen.add((tid, d))
                    sensors.append((d, codes[tid]))
    return {
        "overall": rules.precision_by(("all", code) for _, code, _, _ in closed).get("all"),
        "by_rule": rules.precision_by((rv or "unknown", code) for _, code, rv, _ in closed),
        "by_model": rules.precision_by((mv or "unknown", code) for _, code, _, mv in closed),
        "by_sensor": rules.precision_by(sensors),
    }


def near_misses(s: Session, limit: int = 100, grid_id: str | None = None) -> list[dict[str, Any]]:
    q = select(NearMiss).order_by(NearMiss.ts.desc(), NearMiss.id.desc()).limit(limit)
    if grid_id:
        q = q.where(NearMiss.grid_id == grid_id)
    return [
        {
            "id": n.id,
            "ts": _iso(n.ts),
            "incident_key": n.incident_key,
            "grid_id": n.grid_id,
            "category": n.category,
            "score": n.score,
            "threshold": n.threshold,
            "why_not": n.why_not,
            "rule_version": n.rule_version,
            "payload": n.payload,
        }
        for n in s.scalars(q)
    ]


def last_change_id(s: Session) -> int:
    return int(s.scalar(select(func.max(OutboxRow.id))) or 0)


def changes_since(s: Session, after_id: int, limit: int = 500) -> list[tuple[int, dict[str, Any]]]:
    """Ticket events committed after outbox row ``after_id`` (the console's live feed)."""
    rows = s.execute(
        select(OutboxRow.id, OutboxRow.payload)
        .where(OutboxRow.id > after_id)
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    return [(int(i), p) for i, p in rows]
