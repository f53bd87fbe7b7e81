"""Complaint intake: link a complaint to its incident's ticket, or open a reactive one.

A complaint (Open311 POST, the API, or ``gw.complaints``) is linked to the active ticket
of its grid and category within the configured distance and time window. If that ticket
was raised proactively before the complaint, the complaint was *pre-empted* and the
lead time is recorded; otherwise a reactive ticket is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from gridwatch.contracts import Complaint, incident_key
from tickets import rules
from tickets.errors import (
    UnknownLocation,
)
from tickets.models import ComplaintRow, Ticket
from tickets.store import TicketStore


@dataclass(frozen=True)
class ComplaintOutcome:
    complaint_id: str
    ticket_id: str
    grid_id: str
    linked: bool  # joined an existing ticket (else a reactive ticket was opened)
    pre_empted: bool  # a proactive ticket existed before the complaint
    lead_min: float | None
    duplicate: bool = False


class ComplaintIntake(TicketStore):
    def file_complaint(
        self, complaint: Complaint, attach: Callable[[Session], None] | None = None
    ) -> ComplaintOutcome:
        """Link a complaint to its incident's active ticket, or open a reactive ticket.

        ``attach(session)`` adds rows that must commit with a new complaint (the Open311
        request that carried it); it is not called for a duplicate."""
        grid = complaint.grid_id or self.registry.locate(complaint.lon, complaint.lat, "grid")
        if grid is not None and grid not in self.registry.grids:
            raise UnknownLocation(f"complaint {complaint.complaint_id!r}: unknown grid {grid!r}")
        if grid is None:
            raise UnknownLocation(
                f"complaint {complaint.complaint_id!r} at ({complaint.lon}, {complaint.lat}) "
                "lies in no grid"
            )
        return self._retrying(
            lambda s: self._complaint_once(s, complaint, grid, attach),
            lambda: self._complaint_seen(complaint.complaint_id),
        )

    def _complaint_seen(self, complaint_id: str) -> ComplaintOutcome | None:
        with self.read_session() as s:
            row = s.get(ComplaintRow, complaint_id)
            return None if row is None else _complaint_outcome(row, duplicate=True)

    def _complaint_once(
        self,
        s: Session,
        c: Complaint,
        grid: str,
        attach: Callable[[Session], None] | None = None,
    ) -> ComplaintOutcome:
        existing = s.get(ComplaintRow, c.complaint_id)
        if existing is not None:
            return _complaint_outcome(existing, duplicate=True)
        key = incident_key(grid, c.category)
        # Tickets active when the call was made: active now, or closed (in event time)
        # after the call — a hotline feed that lags the sensors must not open a second
        # ticket beside the one that was open when the resident called.
        q = (
            select(Ticket)
            .where(
                Ticket.grid_id == grid,
                Ticket.category == c.category.value,
                or_(
                    Ticket.state.in_(rules.ACTIVE_STATES),
                    and_(Ticket.closed_at.is_not(None), Ticket.closed_at >= c.ts),
                ),
            )
            .order_by(Ticket.created_at)
            .with_for_update()
        )
        candidates = list(s.scalars(q))
        matches = [
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
        ]
        # the nearest of them (the call is about the site the resident stands at)
        match = min(
            matches,
            key=lambda t: (
                rules.distance_m(t.lon, t.lat, c.lon, c.lat)
                if t.lon is not None and t.lat is not None
                else float("inf")
            ),
            default=None,
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
            # every complaint yields one "complaint" event (pre-emption rate denominator)
            self._record(
                s,
                ticket,
                "complaint",
                ticket.state,
                c.ts,
                actor,
                f"complaint {c.complaint_id} opened this ticket",
                {"complaint_id": c.complaint_id, "lead_min": None, "pre_empted": False},
            )
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
                {"complaint_id": c.complaint_id, "lead_min": lead, "pre_empted": lead is not None},
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
        if attach is not None:
            attach(s)
        s.flush()
        return _complaint_outcome(row)

    # -- operator actions ----------------------------------------------------------------


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
