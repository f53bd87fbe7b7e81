"""Matching tickets to the ground truth, for the 未诉先办 scoreboard (``gridwatch.scoreboard``).

Pure: the records of one run (tickets from the store, incidents from the simulator's
truth) and what each incident and each proactive ticket came to. The definitions are
in ``gridwatch.scoreboard``'s docstring.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DEVICE_FAULT = "device_fault"
WATERLOGGING = "waterlogging"
DISMISSED = frozenset({"retracted", "false_alarm"})
# Lasting faults after which a flood sensor cannot see its own site's water.
BLIND_FAULTS = frozenset({"battery_death", "dropout", "stuck", "drift"})


@dataclass(frozen=True)
class MatchParams:
    before_min: float = 60.0  # a forecast may come this long before the incident starts
    after_min: float = 15.0  # a ticket this long after the incident ended still belongs


@dataclass(frozen=True)
class TicketRec:
    id: str
    incident_key: str
    category: str
    source: str
    state: str
    created_at: datetime
    closed_at: datetime | None = None
    why: str = ""

    @property
    def proactive(self) -> bool:
        return self.source != "complaint"

    @property
    def grid_id(self) -> str:
        return self.incident_key.split(":", 1)[0]

    @property
    def site(self) -> str | None:
        parts = self.incident_key.split(":", 2)
        return parts[2] if len(parts) == 3 else None

    def active_at(self, t: datetime) -> bool:
        return self.created_at <= t and (self.closed_at is None or self.closed_at > t)


@dataclass(frozen=True)
class IncidentRec:
    incident_id: str
    incident_key: str
    category: str
    grid_id: str
    site: str
    start: datetime
    end: datetime | None = None
    worthy_at: datetime | None = None
    first_complaint_at: datetime | None = None
    complaint_ids: tuple[str, ...] = ()
    detail: str = ""
    lon: float = math.nan
    lat: float = math.nan


def _time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    t = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _required_time(value: Any, what: str) -> datetime:
    t = _time(value)
    if t is None:
        raise ValueError(f"{what} has no time")
    return t


def tickets_from_dicts(docs: Iterable[Mapping[str, Any]]) -> list[TicketRec]:
    """Ticket dicts as ``gridwatch.demo`` reads them from the store."""
    return [
        TicketRec(
            id=str(d["id"]),
            incident_key=str(d["incident_key"]),
            category=str(d["category"]),
            source=str(d["source"]),
            state=str(d["state"]),
            created_at=_required_time(d["created_at"], f"ticket {d['id']}"),
            closed_at=_time(d.get("closed_at")),
            why=str(d.get("why", "")),
        )
        for d in docs
    ]


def incidents_from_dicts(docs: Iterable[Mapping[str, Any]]) -> list[IncidentRec]:
    """Incident dicts of the truth (``simulators.truth.Incident.to_dict``)."""
    return [
        IncidentRec(
            incident_id=str(d["incident_id"]),
            incident_key=str(d["incident_key"]),
            category=str(d["category"]),
            grid_id=str(d["grid_id"]),
            site=str(d["site"]),
            start=_required_time(d["start"], f"incident {d['incident_id']}"),
            end=_time(d.get("end")),
            worthy_at=_time(d.get("complaint_worthy_at")),
            first_complaint_at=_time(d.get("first_complaint_at")),
            complaint_ids=tuple(d.get("complaint_ids") or ()),
            detail=str(d.get("detail") or ""),
            lon=float(d.get("lon", math.nan)),
            lat=float(d.get("lat", math.nan)),
        )
        for d in docs
    ]


# -- matching ------------------------------------------------------------------------


def tickets_about(
    incident: IncidentRec, tickets: Sequence[TicketRec], params: MatchParams
) -> list[TicketRec]:
    """The proactive tickets of ``incident``'s key that belong to it, oldest first."""
    lo = incident.start - timedelta(minutes=params.before_min)
    hi = None if incident.end is None else incident.end + timedelta(minutes=params.after_min)
    out = [
        t
        for t in tickets
        if t.proactive
        and t.incident_key == incident.incident_key
        and (
            (lo <= t.created_at and (hi is None or t.created_at <= hi))
            or (t.created_at < lo and t.active_at(incident.start))
        )
    ]
    return sorted(out, key=lambda t: (t.created_at, t.id))


def _concurrent(tickets: Sequence[TicketRec]) -> tuple[int, int, int]:
    """(duplicates, of which reactive, re-raised) among one incident's tickets.

    A reactive duplicate involves a complaint's ticket: a call not linked to the
    incident's active proactive ticket, or a proactive ticket raised beside a calls'
    ticket that had taken the incident's calls.
    """
    duplicates = reactive = reraised = 0
    ordered = sorted(tickets, key=lambda t: (t.created_at, t.id))
    for i, t in enumerate(ordered[1:], start=1):
        beside = [
            p for p in ordered[:i] if p.active_at(t.created_at) or p.created_at == t.created_at
        ]
        if beside:
            duplicates += 1
            reactive += int(not t.proactive or any(not p.proactive for p in beside))
        else:
            reraised += 1
    return duplicates, reactive, reraised


def blind_at(incident: IncidentRec, faults: Sequence[IncidentRec]) -> bool:
    """Whether the flood sensor of ``incident``'s site had failed before it mattered
    (complaint-worthiness, else the first call, else the incident's end)."""
    if incident.category != WATERLOGGING:
        return False
    device = incident.site.removeprefix("site-")
    until = incident.worthy_at or incident.first_complaint_at or incident.end
    return any(
        f.site == device
        and f.detail in BLIND_FAULTS
        and (until is None or f.start <= until)
        and (f.end is None or f.end >= incident.start)
        for f in faults
    )


def _minutes(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds() / 60.0


@dataclass(frozen=True)
class IncidentOutcome:
    incident_id: str
    incident_key: str
    category: str
    grid_id: str
    lon: float
    lat: float
    worthy: bool
    complained: bool
    # complained: pre-empted | late | retracted | reactive | missed;
    # otherwise: ticketed | unticketed
    outcome: str
    ticket_id: str | None  # the first proactive ticket about it
    ticketed_at: datetime | None
    worthy_at: datetime | None
    first_complaint_at: datetime | None
    lead_complaint_min: float | None  # set when pre-empted
    lead_worthy_min: float | None  # set when worthy and proactively ticketed
    late_min: float | None  # set when the first proactive ticket came after the call
    tickets: tuple[str, ...]
    duplicates: int
    duplicates_reactive: int
    reraised: int
    blind: bool = False  # its only sensor had failed (dead, silent, stuck, drifting)

    @property
    def ticketed(self) -> bool:
        return bool(self.tickets)


def judge_incident(
    incident: IncidentRec,
    tickets: Sequence[TicketRec],
    by_id: Mapping[str, TicketRec],
    complaint_ticket: Mapping[str, str],
    params: MatchParams,
    blind: bool = False,
) -> IncidentOutcome:
    own = tickets_about(incident, tickets, params)
    filed = {complaint_ticket[c] for c in incident.complaint_ids if c in complaint_ticket}
    reactive = [by_id[i] for i in sorted(filed) if i in by_id and not by_id[i].proactive]
    every = {t.id for t in own} | filed
    duplicates, dup_reactive, reraised = _concurrent([*own, *reactive])
    call = incident.first_complaint_at
    first = own[0] if own else None
    lead_c = lead_w = late = None
    if call is None:
        outcome = "ticketed" if every else "unticketed"
    else:
        before = [t for t in own if t.created_at <= call]
        valid = [
            t
            for t in before
            if not (t.state in DISMISSED and t.closed_at is not None and t.closed_at <= call)
        ]
        if valid:
            outcome, first = "pre-empted", valid[0]
            lead_c = _minutes(call, valid[0].created_at)
        elif before:
            outcome = "retracted"
        elif own:
            outcome, late = "late", _minutes(own[0].created_at, call)
        else:
            outcome = "reactive" if every else "missed"
    if first is not None and incident.worthy_at is not None:
        lead_w = _minutes(incident.worthy_at, first.created_at)
    return IncidentOutcome(
        incident_id=incident.incident_id,
        incident_key=incident.incident_key,
        category=incident.category,
        grid_id=incident.grid_id,
        lon=incident.lon,
        lat=incident.lat,
        worthy=incident.worthy_at is not None,
        complained=call is not None,
        outcome=outcome,
        ticket_id=first.id if first else None,
        ticketed_at=first.created_at if first else None,
        worthy_at=incident.worthy_at,
        first_complaint_at=call,
        lead_complaint_min=lead_c,
        lead_worthy_min=lead_w,
        late_min=late,
        tickets=tuple(sorted(every)),
        duplicates=duplicates,
        duplicates_reactive=dup_reactive,
        reraised=reraised,
        blind=blind,
    )


@dataclass(frozen=True)
class TicketOutcome:
    ticket_id: str
    incident_key: str
    category: str
    grid_id: str
    state: str
    created_at: datetime
    incident_id: str | None  # the incident it is about (None: false ticket)
    why: str = ""
    # false tickets: minutes until an incident of the same key started (None: never)
    next_incident_min: float | None = None


def judge_tickets(
    tickets: Sequence[TicketRec], incidents: Sequence[IncidentRec], params: MatchParams
) -> list[TicketOutcome]:
    """Each proactive ticket and the incident it is about (the nearest in time)."""
    about: dict[str, list[IncidentRec]] = defaultdict(list)
    for inc in incidents:
        for t in tickets_about(inc, tickets, params):
            about[t.id].append(inc)

    def distance(t: TicketRec, inc: IncidentRec) -> float:
        if t.created_at < inc.start:
            return (inc.start - t.created_at).total_seconds()
        if inc.end is not None and t.created_at > inc.end:
            return (t.created_at - inc.end).total_seconds()
        return 0.0

    out = []
    for t in tickets:
        if not t.proactive:
            continue
        near = min(about[t.id], key=lambda i: (distance(t, i), i.start), default=None)
        later = [
            _minutes(i.start, t.created_at)
            for i in incidents
            if near is None and i.incident_key == t.incident_key and i.start >= t.created_at
        ]
        out.append(
            TicketOutcome(
                ticket_id=t.id,
                incident_key=t.incident_key,
                category=t.category,
                grid_id=t.grid_id,
                state=t.state,
                created_at=t.created_at,
                incident_id=near.incident_id if near else None,
                why=t.why,
                next_incident_min=min(later, default=None),
            )
        )
    return out
