"""The ticket service: the one way anything changes the ticket store.

The stream ticketing job calls ``raise_alert`` (and ``record_near_miss``); the API
calls ``file_complaint`` and the operator actions. Every change runs in one database
transaction that also writes its audit row and its outbox row. The rules themselves
live in ``tickets.rules``; this module only loads rows, applies a decision and saves.

Construction::

    engine = make_engine(db_url); migrate(engine)
    service = TicketService(engine, config, registry)
    # or: TicketService.from_url(db_url, registry)  (migrates on start-up)
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import uuid4

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from gridwatch.contracts import Alert, Category, Complaint, Severity, TicketEvent, incident_key
from gridwatch.registry import Registry
from tickets import rules
from tickets.config import TicketsConfig
from tickets.db import make_engine, migrate, read_session_factory, session_factory
from tickets.errors import IllegalTransition, StoreError, TicketError, TicketNotFound
from tickets.errors import UnknownLocation as UnknownLocation  # re-exported for callers
from tickets.models import AuditRow, ComplaintRow, Evidence, NearMiss, OutboxRow, SeenAlert, Ticket

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 8
MAX_EVIDENCE_BYTES = 32_000
SYSTEM = "system"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RaiseOutcome:
    alert_id: str
    action: str  # create | promote | evidence | auto_resolve | retract | ignore | duplicate
    ticket_id: str | None
    state: str | None
    escalated: bool = False

    @property
    def duplicate(self) -> bool:
        return self.action == "duplicate"


@dataclass(frozen=True)
class ComplaintOutcome:
    complaint_id: str
    ticket_id: str
    grid_id: str
    linked: bool  # joined an existing ticket (else a reactive ticket was opened)
    pre_empted: bool  # a proactive ticket existed before the complaint
    lead_min: float | None
    duplicate: bool = False


class TicketService:
    """Raise, link, act on and sweep tickets. Thread-safe; one instance per process."""

    def __init__(
        self,
        engine: Engine,
        config: TicketsConfig,
        registry: Registry,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.config = config
        self.registry = registry
        self.clock = clock
        self.session = session_factory(engine)
        self.read_session = read_session_factory(engine)

    @classmethod
    def from_url(
        cls,
        db_url: str,
        registry: Registry,
        config: TicketsConfig | None = None,
        *,
        run_migrations: bool = True,
        clock: Callable[[], datetime] = utc_now,
    ) -> TicketService:
        engine = make_engine(db_url)
        if run_migrations:
            migrate(engine)
        cfg = config if config is not None else TicketsConfig(db_url=db_url)
        return cls(engine, cfg, registry, clock=clock)

    # -- transactions ---------------------------------------------------------------

    def _retrying(self, work: Callable[[Session], T], on_conflict: Callable[[], T | None]) -> T:
        """Run ``work`` in a transaction, retrying races the database caught for us."""
        last: Exception | None = None
        for _ in range(MAX_ATTEMPTS):
            try:
                with self.session.begin() as s:
                    return work(s)
            except IntegrityError as exc:
                last = exc
                settled = on_conflict()
                if settled is not None:
                    return settled
            except OperationalError as exc:
                # deadlock / serialization failure / SQLite busy: try again
                last = exc
                log.warning("ticket transaction retried error=%s", type(exc.orig).__name__)
        raise StoreError(f"ticket store conflict not resolved after {MAX_ATTEMPTS} tries: {last}")

    # -- raising ---------------------------------------------------------------------

    def raise_alert(self, alert: Alert) -> RaiseOutcome:
        """Apply one alert: idempotent by ``alert_id``; one active ticket per incident."""
        if alert.kind == "maintenance" and alert.category != Category.DEVICE_FAULT:
            key = incident_key(alert.grid_id, Category.DEVICE_FAULT, alert.site)
            alert = alert.model_copy(
                update={"category": Category.DEVICE_FAULT, "incident_key": key}
            )
        return self._retrying(
            lambda s: self._raise_once(s, alert), lambda: self._seen_outcome(alert.alert_id)
        )

    def _seen_outcome(self, alert_id: str) -> RaiseOutcome | None:
        with self.read_session() as s:
            seen = s.get(SeenAlert, alert_id)
            if seen is None:
                return None
            state = s.scalar(select(Ticket.state).where(Ticket.id == seen.ticket_id))
            return RaiseOutcome(alert_id, "duplicate", seen.ticket_id, state)

    def _raise_once(self, s: Session, alert: Alert) -> RaiseOutcome:
        seen = s.get(SeenAlert, alert.alert_id)
        if seen is not None:
            state = s.scalar(select(Ticket.state).where(Ticket.id == seen.ticket_id))
            return RaiseOutcome(alert.alert_id, "duplicate", seen.ticket_id, state)
        ticket = self._active(s, alert.incident_key)
        d = rules.decide_raise(
            ticket.state if ticket else None,
            ticket.severity if ticket else None,
            alert.kind,
            alert.severity.value,
        )
        if d.action == "ignore":
            s.add(_seen(alert, None, d.action, self.clock()))
            return RaiseOutcome(alert.alert_id, "ignore", None, None)
        if ticket is None:
            ticket = self._create_from_alert(s, alert, d.state or "open")
        else:
            prev = ticket.state
            if d.escalate:
                old = ticket.severity
                ticket.severity = alert.severity.value
                self._record(
                    s,
                    ticket,
                    "escalate",
                    prev,
                    alert.ts,
                    SYSTEM,
                    f"{old} → {ticket.severity}: {alert.why}",
                )
            if d.action == "promote":
                self._open(ticket, alert.ts)
            elif d.action in ("auto_resolve", "retract"):
                ticket.closed_at = alert.ts
            if alert.kind == "forecast":
                ticket.probability = alert.probability
                ticket.expected_at = alert.expected_at
            if d.state != prev:
                assert d.state is not None
                ticket.state = d.state
                self._record(s, ticket, d.action, prev, alert.ts, SYSTEM, alert.why or d.reason)
            elif not d.escalate:
                self._record(s, ticket, "evidence", prev, alert.ts, SYSTEM, alert.why or d.reason)
        self._add_evidence(s, ticket, alert)
        s.add(_seen(alert, ticket.id, d.action, self.clock()))
        s.flush()
        return RaiseOutcome(alert.alert_id, d.action, ticket.id, ticket.state, d.escalate)

    def _active(self, s: Session, key: str) -> Ticket | None:
        q = (
            select(Ticket)
            .where(Ticket.incident_key == key, Ticket.state.in_(rules.ACTIVE_STATES))
            .with_for_update()
        )
        return s.scalars(q).first()

    def _create_from_alert(self, s: Session, alert: Alert, state: str) -> Ticket:
        lon, lat = alert.lon, alert.lat
        if lon is None or lat is None:
            lon, lat = self._device_point(alert.evidence)
        source = "maintenance" if alert.kind == "maintenance" else "proactive"
        ticket = self._new_ticket(
            key=alert.incident_key,
            category=alert.category.value,
            severity=alert.severity.value,
            grid_id=alert.grid_id,
            district_id=alert.district_id,
            site=alert.site,
            lon=lon,
            lat=lat,
            source=source,
            ts=alert.ts,
            state=state,
            why=alert.why,
        )
        ticket.probability = alert.probability if alert.kind == "forecast" else None
        ticket.expected_at = alert.expected_at
        ticket.rule_version = alert.rule_version
        ticket.model_version = str(alert.evidence.get("model_version", ""))[:64]
        s.add(ticket)
        s.flush()  # the unique partial index speaks here if another worker won
        self._record(s, ticket, "create", None, alert.ts, SYSTEM, alert.why or "raised")
        return ticket

    def _new_ticket(
        self,
        *,
        key: str,
        category: str,
        severity: str,
        grid_id: str,
        district_id: str,
        site: str | None,
        lon: float | None,
        lat: float | None,
        source: str,
        ts: datetime,
        state: str,
        why: str,
    ) -> Ticket:
        micro = (
            self.registry.locate(lon, lat, "micro_grid")
            if lon is not None and lat is not None
            else None
        )
        roster = self.config.roster_for(grid_id)
        inspector = roster.inspectors[zlib.crc32(key.encode()) % len(roster.inspectors)]
        t = Ticket(
            id=f"TK-{uuid4().hex[:12].upper()}",
            incident_key=key,
            category=category,
            severity=severity,
            state=state,
            source=source,
            grid_id=grid_id,
            district_id=district_id,
            micro_grid_id=micro,
            site=site,
            lon=lon,
            lat=lat,
            why=why[:500],
            created_at=ts,
            assignee=inspector,
            agency=self.config.agency_for(grid_id, category),
            ack_breached=False,
            resolve_breached=False,
            escalation_stage=0,
            evidence_count=0,
            rule_version="",
            model_version="",
            updated_at=self.clock(),
        )
        if state == "open":
            self._open(t, ts)
        return t

    def _open(self, t: Ticket, ts: datetime) -> None:
        t.opened_at = ts
        t.ack_due, t.resolve_due = rules.due_times(self.config.sla_for(t.category), ts)

    def _device_point(self, evidence: dict[str, Any]) -> tuple[float | None, float | None]:
        for dev in _device_ids(evidence):
            placed = self.registry.get(dev)
            if placed is not None:
                return placed.device.lon, placed.device.lat
        return None, None

    def _add_evidence(self, s: Session, t: Ticket, alert: Alert) -> None:
        payload = alert.evidence
        if len(json.dumps(payload, default=str)) > MAX_EVIDENCE_BYTES:
            payload = {"truncated": True, "keys": sorted(payload)[:50]}
        s.add(
            Evidence(
                ticket_id=t.id,
                alert_id=alert.alert_id,
                kind=alert.kind,
                ts=alert.ts,
                severity=alert.severity.value,
                probability=alert.probability,
                expected_at=alert.expected_at,
                why=alert.why,
                rule_version=alert.rule_version,
                model_version=str(alert.evidence.get("model_version", ""))[:64],
                device_ids=_device_ids(alert.evidence),
                payload=payload,
            )
        )
        t.evidence_count = (t.evidence_count or 0) + 1

    def _record(
        self,
        s: Session,
        t: Ticket,
        action: str,
        from_state: str | None,
        ts: datetime,
        actor: str,
        reason: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """The audit row and the outbox row of one change, in the caller's transaction."""
        t.updated_at = self.clock()
        s.add(
            AuditRow(
                ticket_id=t.id,
                ts=ts,
                actor=actor[:64],
                action=action,
                from_state=from_state,
                to_state=t.state,
                reason=reason[:500],
                detail=detail or {},
            )
        )
        event = TicketEvent(
            event_id=uuid4().hex,
            ticket_id=t.id,
            incident_key=t.incident_key,
            event=action[:32],
            state=t.state,  # type: ignore[arg-type]  # states are checked by rules
            category=Category(t.category),
            severity=Severity(t.severity),
            grid_id=t.grid_id,
            ts=ts,
            actor=actor[:64],
            reason=reason[:500],
        )
        s.add(
            OutboxRow(
                event_id=event.event_id,
                ticket_id=t.id,
                key=t.incident_key,
                payload=event.model_dump(mode="json"),
                created_at=self.clock(),
                attempts=0,
            )
        )

    # -- near misses -------------------------------------------------------------------

    def record_near_miss(
        self,
        *,
        incident_key: str,
        grid_id: str,
        category: str,
        ts: datetime,
        why_not: str,
        score: float | None = None,
        threshold: float | None = None,
        rule_version: str = "",
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Log an incident that was considered and not raised ("why not raised")."""
        with self.session.begin() as s:
            row = NearMiss(
                ts=ts,
                incident_key=incident_key[:200],
                grid_id=grid_id[:64],
                category=category[:32],
                score=score,
                threshold=threshold,
                why_not=why_not[:500],
                rule_version=rule_version[:64],
                payload=payload or {},
                created_at=self.clock(),
            )
            s.add(row)
            s.flush()
            return row.id

    # -- complaints -------------------------------------------------------------------

    def file_complaint(self, complaint: Complaint) -> ComplaintOutcome:
        """Link a complaint to its incident's active ticket, or open a reactive ticket."""
        grid = complaint.grid_id or self.registry.locate(complaint.lon, complaint.lat, "grid")
        if grid is None:
            raise UnknownLocation(
                f"complaint {complaint.complaint_id!r} at ({complaint.lon}, {complaint.lat}) "
                "lies in no grid"
            )
        return self._retrying(
            lambda s: self._complaint_once(s, complaint, grid),
            lambda: self._complaint_seen(complaint.complaint_id),
        )

    def _complaint_seen(self, complaint_id: str) -> ComplaintOutcome | None:
        with self.read_session() as s:
            row = s.get(ComplaintRow, complaint_id)
            return None if row is None else _complaint_outcome(row, duplicate=True)

    def _complaint_once(self, s: Session, c: Complaint, grid: str) -> ComplaintOutcome:
        existing = s.get(ComplaintRow, c.complaint_id)
        if existing is not None:
            return _complaint_outcome(existing, duplicate=True)
        key = incident_key(grid, c.category)
        q = (
            select(Ticket)
            .where(
                Ticket.grid_id == grid,
                Ticket.category == c.category.value,
                Ticket.state.in_(rules.ACTIVE_STATES),
            )
            .order_by(Ticket.created_at)
            .with_for_update()
        )
        candidates = list(s.scalars(q))
        match = next(
            (
                t
                for t in candidates
                if rules.complaint_matches(
                    (t.lon, t.lat) if t.lon is not None and t.lat is not None else None,
                    t.created_at,
                    (c.lon, c.lat),
                    c.ts,
                    self.config.complaint_link_distance_m,
                    self.config.complaint_link_window_min,
                )
            ),
            None,
        )
        if match is None:  # the incident's own key always links, whatever the window
            match = next((t for t in candidates if t.incident_key == key), None)
        actor = f"complaint:{c.source}"
        if match is None:
            district = (
                self.registry.ancestor(grid, "district") if grid in self.registry.grids else None
            )
            ticket = self._new_ticket(
                key=key,
                category=c.category.value,
                severity="minor",
                grid_id=grid,
                district_id=district or grid,
                site=None,
                lon=c.lon,
                lat=c.lat,
                source="complaint",
                ts=c.ts,
                state="open",
                why=c.description[:200],
            )
            s.add(ticket)
            s.flush()
            self._record(s, ticket, "create", None, c.ts, actor, f"reactive: {c.description[:200]}")
            linked, lead = False, None
        else:
            ticket, linked = match, True
            proactive = ticket.created_at if ticket.source != "complaint" else None
            lead = rules.lead_minutes(proactive, c.ts)
            if ticket.state == "pre_alert":
                self._open(ticket, c.ts)
                ticket.state = "open"
                self._record(
                    s, ticket, "promote", "pre_alert", c.ts, actor, "confirmed by a complaint"
                )
            self._record(
                s,
                ticket,
                "complaint",
                ticket.state,
                c.ts,
                actor,
                f"complaint {c.complaint_id} linked",
                {"complaint_id": c.complaint_id, "lead_min": lead},
            )
        row = ComplaintRow(
            id=c.complaint_id,
            ts=c.ts,
            category=c.category.value,
            lon=c.lon,
            lat=c.lat,
            grid_id=grid,
            description=c.description,
            source=c.source,
            ticket_id=ticket.id,
            linked=linked,
            pre_empted=lead is not None,
            lead_min=lead,
            created_at=self.clock(),
        )
        s.add(row)
        s.flush()
        return _complaint_outcome(row)

    # -- operator actions ----------------------------------------------------------------

    def acknowledge(self, ticket_id: str, actor: str, reason: str = "") -> Ticket:
        return self._transition(ticket_id, "acknowledged", actor, reason)

    def dispatch(
        self, ticket_id: str, actor: str, reason: str = "", assignee: str | None = None
    ) -> Ticket:
        return self._transition(ticket_id, "dispatched", actor, reason, assignee=assignee)

    def resolve(
        self, ticket_id: str, actor: str, closing_code: str = "real", reason: str = ""
    ) -> Ticket:
        if closing_code not in rules.CLOSING_CODES or closing_code == "false_alarm":
            raise TicketError(
                f"closing code {closing_code!r} is not one of real/duplicate/already_fixed"
            )
        return self._transition(ticket_id, "resolved", actor, reason, closing_code=closing_code)

    def mark_false_alarm(self, ticket_id: str, actor: str, reason: str = "") -> Ticket:
        return self._transition(ticket_id, "false_alarm", actor, reason, closing_code="false_alarm")

    def assign(self, ticket_id: str, assignee: str, actor: str, reason: str = "") -> Ticket:
        def work(s: Session) -> Ticket:
            t = self._locked(s, ticket_id)
            if not rules.is_active(t.state):
                raise IllegalTransition(ticket_id, t.state, "assign")
            old, t.assignee = t.assignee, assignee[:64]
            self._record(
                s, t, "assign", t.state, self.clock(), actor, reason or f"{old} → {t.assignee}"
            )
            return t

        return self._retrying(work, lambda: None)

    def _locked(self, s: Session, ticket_id: str) -> Ticket:
        t = s.get(Ticket, ticket_id, with_for_update=True)
        if t is None:
            raise TicketNotFound(ticket_id)
        return t

    def _transition(
        self,
        ticket_id: str,
        to_state: str,
        actor: str,
        reason: str,
        *,
        assignee: str | None = None,
        closing_code: str | None = None,
    ) -> Ticket:
        def work(s: Session) -> Ticket:
            t = self._locked(s, ticket_id)
            if not rules.is_legal(t.state, to_state):
                raise IllegalTransition(ticket_id, t.state, to_state)
            now, prev = self.clock(), t.state
            if to_state in ("acknowledged", "dispatched") and t.acknowledged_at is None:
                t.acknowledged_at = now
                t.ack_breached = t.ack_breached or rules.breached(t.ack_due, now, now)
            if to_state == "dispatched":
                t.dispatched_at = now
            if assignee:
                t.assignee = assignee[:64]
            if to_state in rules.TERMINAL_STATES:
                t.closed_at = now
                t.closing_code = closing_code
                if to_state == "resolved":
                    t.resolve_breached = t.resolve_breached or rules.breached(
                        t.resolve_due, now, now
                    )
            t.state = to_state
            action = {v: k for k, v in rules.ACTION_STATE.items()}[to_state]
            detail = {"closing_code": closing_code} if closing_code else None
            self._record(s, t, action, prev, now, actor, reason, detail)
            return t

        return self._retrying(work, lambda: None)

    # -- SLA sweep ---------------------------------------------------------------------

    def sweep(self, now: datetime | None = None) -> dict[str, int]:
        """Escalate, remind and record breaches for every active ticket as of ``now``."""
        now = now or self.clock()
        counts = {"escalations": 0, "reminders": 0, "breaches": 0}
        with self.read_session() as rs:
            ids = list(
                rs.scalars(
                    select(Ticket.id).where(
                        Ticket.state.in_(("open", "acknowledged", "dispatched"))
                    )
                )
            )
        for tid in ids:
            for k, v in self._retrying(
                lambda s, tid=tid: self._sweep_one(s, tid, now), lambda: None
            ).items():
                counts[k] += v
        return counts

    def _sweep_one(self, s: Session, tid: str, now: datetime) -> dict[str, int]:
        out = {"escalations": 0, "reminders": 0, "breaches": 0}
        t = s.get(Ticket, tid, with_for_update=True)
        if t is None or t.state not in ("open", "acknowledged", "dispatched"):
            return out
        if t.state == "open" and t.opened_at is not None:
            stage = rules.escalation_stage(t.ack_due, now, self.config.escalation)
            if stage > t.escalation_stage:
                role = self.config.escalation[stage - 1].role
                t.escalation_stage, t.assignee = stage, self._who(t, role)
                self._record(
                    s,
                    t,
                    "escalate",
                    t.state,
                    now,
                    SYSTEM,
                    f"not acknowledged: stage {stage} → {role}",
                    {"stage": stage},
                )
                out["escalations"] += 1
            elif rules.reminder_due(
                t.opened_at, t.last_reminder_at, now, self.config.reminder_every_min
            ):
                t.last_reminder_at = now
                self._record(s, t, "remind", t.state, now, SYSTEM, f"reminder to {t.assignee}")
                out["reminders"] += 1
        if (
            not t.ack_breached
            and t.acknowledged_at is None
            and rules.breached(t.ack_due, None, now)
        ):
            t.ack_breached = True
            self._record(
                s,
                t,
                "sla_breach",
                t.state,
                now,
                SYSTEM,
                "acknowledge target missed",
                {"target": "acknowledge"},
            )
            out["breaches"] += 1
        if not t.resolve_breached and rules.breached(t.resolve_due, None, now):
            t.resolve_breached = True
            self._record(
                s,
                t,
                "sla_breach",
                t.state,
                now,
                SYSTEM,
                "resolve target missed",
                {"target": "resolve"},
            )
            out["breaches"] += 1
        return out

    def _who(self, t: Ticket, role: str) -> str:
        if role == "grid_head":
            return self.config.roster_for(t.grid_id).grid_head
        if role == "street_office":
            street = (
                self.registry.ancestor(t.grid_id, "street")
                if t.grid_id in self.registry.grids
                else None
            )
            return f"{street or t.district_id}/office"
        return f"{t.district_id}/command"


def _seen(alert: Alert, ticket_id: str | None, action: str, now: datetime) -> SeenAlert:
    return SeenAlert(
        alert_id=alert.alert_id,
        incident_key=alert.incident_key,
        ticket_id=ticket_id,
        action=action,
        seen_at=now,
    )


def _device_ids(evidence: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    one = evidence.get("device_id")
    if isinstance(one, str):
        ids.append(one)
    many = evidence.get("devices")
    if isinstance(many, list):
        ids.extend(d for d in many if isinstance(d, str) and d not in ids)
    return ids[:32]


def _complaint_outcome(row: ComplaintRow, duplicate: bool = False) -> ComplaintOutcome:
    return ComplaintOutcome(
        complaint_id=row.id,
        ticket_id=row.ticket_id,
        grid_id=row.grid_id,
        linked=row.linked,
        pre_empted=row.pre_empted,
        lead_min=row.lead_min,
        duplicate=duplicate,
    )
