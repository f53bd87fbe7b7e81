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

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from gridwatch.contracts import STORM_KINDS, Alert, Category, incident_key
from tickets import rules
from tickets.complaints import ComplaintIntake, ComplaintOutcome
from tickets.errors import (
    IllegalTransition,
    TicketError,
    UnknownLocation,
)
from tickets.models import Evidence, NearMiss, SeenAlert, Ticket
from tickets.sla import SlaSweeper
from tickets.store import SYSTEM, utc_now
from tickets.storms import StormRecorder

log = logging.getLogger(__name__)

MAX_EVIDENCE_BYTES = 32_000

__all__ = ["ComplaintOutcome", "RaiseOutcome", "TicketService", "UnknownLocation", "utc_now"]


@dataclass(frozen=True)
class RaiseOutcome:
    alert_id: str
    # create | promote | evidence | auto_resolve | retract | ignore | late | duplicate, or
    # for a storm alert (no ticket): storm_start | storm_end | storm_join
    action: str
    ticket_id: str | None
    state: str | None
    escalated: bool = False

    @property
    def duplicate(self) -> bool:
        return self.action == "duplicate"


class TicketService(ComplaintIntake, SlaSweeper, StormRecorder):
    """Raise, link, act on and sweep tickets; record storm periods. Thread-safe; one
    instance per process."""

    def raise_alert(self, alert: Alert) -> RaiseOutcome:
        """Apply one alert: idempotent by ``alert_id``; one active ticket per incident; a
        storm alert (``storm_on`` / ``storm_off``) records a storm period, never a ticket."""
        alert = self._normalise(alert)
        self._check_grid(alert)
        return self._retrying(
            lambda s: self._raise_once(s, alert), lambda: self._seen_outcome(alert.alert_id)
        )

    def _check_grid(self, alert: Alert) -> None:
        if alert.grid_id not in self.registry.grids:
            raise UnknownLocation(f"alert {alert.alert_id!r}: unknown grid {alert.grid_id!r}")
        if alert.kind in STORM_KINDS:
            self._check_storm(alert)

    @staticmethod
    def _normalise(alert: Alert) -> Alert:
        """Maintenance alerts always open a ``device_fault`` ticket."""
        if alert.kind == "maintenance" and alert.category != Category.DEVICE_FAULT:
            key = incident_key(alert.grid_id, Category.DEVICE_FAULT, alert.site)
            return alert.model_copy(update={"category": Category.DEVICE_FAULT, "incident_key": key})
        return alert

    def raise_alerts(self, alerts: Sequence[Alert]) -> list[RaiseOutcome]:
        """Apply a batch of alerts in one transaction (the stream job's batches).

        If the database reports a race anywhere in the batch, the batch is rolled back
        and its alerts are applied one by one, each with its own retries.
        """
        alerts = [self._normalise(a) for a in alerts]
        for a in alerts:
            self._check_grid(a)
        try:
            with self.session.begin() as s:
                return [self._raise_once(s, a) for a in alerts]
        except (IntegrityError, OperationalError):
            return [self.raise_alert(a) for a in alerts]

    async def araise_alert(self, alert: Alert) -> RaiseOutcome:
        """``raise_alert`` from async code (runs in a worker thread)."""
        return await asyncio.to_thread(self.raise_alert, alert)

    async def araise_alerts(self, alerts: Sequence[Alert]) -> list[RaiseOutcome]:
        return await asyncio.to_thread(self.raise_alerts, alerts)

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
        if alert.kind in STORM_KINDS:
            action = self._storm_once(s, alert)
            s.add(_seen(alert, None, action, self.clock()))
            s.flush()
            return RaiseOutcome(alert.alert_id, action, None, None)
        ticket = self._active(s, alert.incident_key)
        d = rules.decide_raise(
            ticket.state if ticket else None,
            ticket.severity if ticket else None,
            alert.kind,
            alert.severity.value,
        )
        if d.action == "ignore":
            s.add(_seen(alert, None, d.action, self.clock()))
            s.flush()  # a re-delivery later in the same batch must see it
            return RaiseOutcome(alert.alert_id, "ignore", None, None)
        if ticket is None:
            late = self._closed_after(s, alert)
            if late is not None:  # the incident already closed after this alert's time
                self._add_evidence(s, late, alert)
                s.add(_seen(alert, late.id, "late", self.clock()))
                s.flush()
                return RaiseOutcome(alert.alert_id, "late", late.id, late.state)
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

    def _closed_after(self, s: Session, alert: Alert) -> Ticket | None:
        """The incident's ticket that closed at or after ``alert.ts``, if any: an alert
        that arrives after its incident was cleared (out of order across stream workers
        handing a partition over, or replayed) is evidence for that ticket, not a new one."""
        q = (
            select(Ticket)
            .where(
                Ticket.incident_key == alert.incident_key,
                Ticket.closed_at.is_not(None),
                Ticket.closed_at >= alert.ts,
                Ticket.created_at <= alert.ts,
            )
            .order_by(Ticket.closed_at.desc())
            .limit(1)
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
