"""The transactional core shared by the ticket service's parts.

``TicketStore`` owns the engine and sessions, retries races the database caught (the
unique active-incident index, duplicate ids, deadlocks), creates and opens tickets, and
writes the audit row plus the outbox row of every change in the caller's transaction.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self, TypeVar
from uuid import uuid4

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from gridwatch.contracts import Category, Severity, TicketEvent
from gridwatch.registry import Registry
from tickets import rules
from tickets.config import TicketsConfig
from tickets.db import make_engine, migrate, read_session_factory, session_factory
from tickets.errors import (
    StoreError,
    StoreUnavailable,
    TicketNotFound,
)
from tickets.models import AuditRow, OutboxRow, Ticket

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ATTEMPTS = 8
SYSTEM = "system"


def utc_now() -> datetime:
    return datetime.now(UTC)


class TicketStore:
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
    ) -> Self:
        engine = make_engine(db_url)
        if run_migrations:
            migrate(engine)
        cfg = config if config is not None else TicketsConfig(db_url=db_url)
        return cls(engine, cfg, registry, clock=clock)

    # -- transactions ---------------------------------------------------------------

    def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction, retried like every write of the store
        (``StoreUnavailable`` when the database keeps failing)."""
        return self._retrying(work, lambda: None)

    def _retrying(self, work: Callable[[Session], T], on_conflict: Callable[[], T | None]) -> T:
        """Run ``work`` in a transaction, retrying races the database caught for us."""
        last: Exception | None = None
        for attempt in range(MAX_ATTEMPTS):
            try:
                with self.session.begin() as s:
                    return work(s)
            except IntegrityError as exc:
                last = exc
                settled = on_conflict()
                if settled is not None:
                    return settled
            except OperationalError as exc:
                # deadlock / serialization failure / SQLite busy / server gone: try again
                last = exc
                log.warning("ticket transaction retried error=%s", type(exc.orig).__name__)
                time.sleep(min(0.05 * 2**attempt, 1.0))
        if isinstance(last, OperationalError):
            raise StoreUnavailable(f"ticket store unavailable after {MAX_ATTEMPTS} tries: {last}")
        raise StoreError(f"ticket store conflict not resolved after {MAX_ATTEMPTS} tries: {last}")

    # -- raising ---------------------------------------------------------------------

    def _active(self, s: Session, key: str) -> Ticket | None:
        q = (
            select(Ticket)
            .where(Ticket.incident_key == key, Ticket.state.in_(rules.ACTIVE_STATES))
            .with_for_update()
        )
        return s.scalars(q).first()

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
                # the TicketEvent, plus the change's detail for sinks that want it
                payload={**event.model_dump(mode="json"), **({"detail": detail} if detail else {})},
                created_at=self.clock(),
                attempts=0,
            )
        )

    def _locked(self, s: Session, ticket_id: str) -> Ticket:
        t = s.get(Ticket, ticket_id, with_for_update=True)
        if t is None:
            raise TicketNotFound(ticket_id)
        return t
