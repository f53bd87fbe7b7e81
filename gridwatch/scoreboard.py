"""未诉先办 scoreboard: tickets matched to the simulator's ground truth, and the figures.

Pure: plain dicts in (tickets from the store, incidents from the truth, complaint →
ticket links from the store), frozen dataclasses out; no clock, I/O or settings. One
definition of the metrics for ``gridwatch evaluate`` and ``gridwatch demo``:

* A *proactive* ticket is one not raised by a complaint (source ``proactive`` or
  ``maintenance``; state ``pre_alert`` or ``open`` when raised).
* The tickets *about* an incident are the proactive tickets of its incident key raised
  between ``before_min`` before it started and ``after_min`` after it ended, plus one
  of that key still active when it started. A proactive ticket about no incident is
  *false*; precision = proactive tickets about an incident / proactive tickets.
* An incident residents called about (``first_complaint_at``) is *pre-empted* when a
  ticket about it was raised at or before the first call and had not been retracted or
  dismissed as a false alarm by then. Lead to the call = first call − that ticket's
  creation; lead to worthiness = ``complaint_worthy_at`` − creation (negative when the
  ticket came after the incident became worth a call).
* Recall = incidents with any ticket (about it, or one its complaints were filed to)
  / incidents, over the complaint-worthy ones (headline) and over all.
* Duplicates: a ticket about an incident (or opened by its calls) raised while another
  of its tickets was still active, in event time (must be 0); *reactive* duplicates are
  calls' tickets opened beside an active proactive one. Re-raised: a later ticket after
  the previous one closed while the incident went on (allowed, counted).
* Device faults: each lasting fault of the truth is a ``device_fault`` incident; it was
  raised as maintenance when a ``device_fault`` ticket is about it, and *raised as a
  flood* when a false waterlogging ticket was raised at the failed sensor's site during
  the fault (at any time for a skewed clock, whose stamps are off).
* ``device_fault`` is scored in its own section; the overall row covers the street
  incidents (every other category).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

DEVICE_FAULT = "device_fault"
WATERLOGGING = "waterlogging"
DISMISSED = frozenset({"retracted", "false_alarm"})
# The targets (on rainstorm-50y and typhoon).
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("pre-emption rate", ">=", 0.90),
    ("median lead before the first call (min)", ">=", 20.0),
    ("precision", ">=", 0.90),
    ("duplicate tickets", "==", 0.0),
)


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

    A reactive duplicate is a complaint's ticket opened while a proactive ticket of the
    incident was active (in event time): the complaint was not linked to it.
    """
    duplicates = reactive = reraised = 0
    ordered = sorted(tickets, key=lambda t: (t.created_at, t.id))
    for i, t in enumerate(ordered[1:], start=1):
        if any(p.active_at(t.created_at) or p.created_at == t.created_at for p in ordered[:i]):
            duplicates += 1
            reactive += int(not t.proactive)
        else:
            reraised += 1
    return duplicates, reactive, reraised


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

    @property
    def ticketed(self) -> bool:
        return bool(self.tickets)


def judge_incident(
    incident: IncidentRec,
    tickets: Sequence[TicketRec],
    by_id: Mapping[str, TicketRec],
    complaint_ticket: Mapping[str, str],
    params: MatchParams,
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
            )
        )
    return out


# -- figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    n: int
    median: float | None
    p10: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(0, None, None, None)
        a = np.asarray(values, dtype=float)
        p10, p50, p90 = (float(x) for x in np.percentile(a, [10, 50, 90]))
        return cls(len(values), p50, p10, p90)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


@dataclass(frozen=True)
class CategoryScore:
    category: str
    incidents: int
    worthy: int
    complained: int
    preempted: int
    late: int
    retracted_before_call: int
    reactive_only: int
    missed: int
    preemption_rate: float | None
    lead_complaint_min: Spread
    lead_worthy_min: Spread
    proactive_tickets: int
    true_tickets: int
    false_tickets: int
    precision: float | None
    false_per_grid_day: float | None
    retracted: int
    retracted_false: int
    ticketed_worthy: int
    recall_worthy: float | None
    ticketed_all: int
    recall_all: float | None
    duplicates: int
    duplicates_reactive: int
    reraised: int
    leads: tuple[float, ...] = field(default=(), repr=False)  # to the first call


def score_category(
    category: str,
    outcomes: Sequence[IncidentOutcome],
    ticket_outcomes: Sequence[TicketOutcome],
    *,
    grid_days: float,
) -> CategoryScore:
    complained = [o for o in outcomes if o.complained]
    worthy = [o for o in outcomes if o.worthy]
    pre = [o for o in complained if o.outcome == "pre-empted"]
    leads = tuple(o.lead_complaint_min for o in pre if o.lead_complaint_min is not None)
    lead_w = [o.lead_worthy_min for o in worthy if o.lead_worthy_min is not None]
    true = [t for t in ticket_outcomes if t.incident_id is not None]
    retracted = [t for t in ticket_outcomes if t.state == "retracted"]
    false = len(ticket_outcomes) - len(true)
    n_out = {k: sum(1 for o in complained if o.outcome == k) for k in ("late", "retracted")}
    return CategoryScore(
        category=category,
        incidents=len(outcomes),
        worthy=len(worthy),
        complained=len(complained),
        preempted=len(pre),
        late=n_out["late"],
        retracted_before_call=n_out["retracted"],
        reactive_only=sum(1 for o in complained if o.outcome == "reactive"),
        missed=sum(1 for o in complained if o.outcome == "missed"),
        preemption_rate=_ratio(len(pre), len(complained)),
        lead_complaint_min=Spread.of(leads),
        lead_worthy_min=Spread.of(lead_w),
        proactive_tickets=len(ticket_outcomes),
        true_tickets=len(true),
        false_tickets=false,
        precision=_ratio(len(true), len(ticket_outcomes)),
        false_per_grid_day=false / grid_days if grid_days > 0 else None,
        retracted=len(retracted),
        retracted_false=sum(1 for t in retracted if t.incident_id is None),
        ticketed_worthy=sum(1 for o in worthy if o.ticketed),
        recall_worthy=_ratio(sum(1 for o in worthy if o.ticketed), len(worthy)),
        ticketed_all=sum(1 for o in outcomes if o.ticketed),
        recall_all=_ratio(sum(1 for o in outcomes if o.ticketed), len(outcomes)),
        duplicates=sum(o.duplicates for o in outcomes),
        duplicates_reactive=sum(o.duplicates_reactive for o in outcomes),
        reraised=sum(o.reraised for o in outcomes),
        leads=leads,
    )


@dataclass(frozen=True)
class FaultRow:
    kind: str
    fault: str
    faults: int
    as_maintenance: int
    as_flood: int


@dataclass(frozen=True)
class FaultScore:
    rows: tuple[FaultRow, ...]
    faults: int
    as_maintenance: int
    as_flood: int
    maintenance_tickets: int
    maintenance_false: int


def score_faults(
    faults: Sequence[IncidentRec],
    fault_outcomes: Sequence[IncidentOutcome],
    maintenance: Sequence[TicketOutcome],
    floods: Sequence[TicketOutcome],
    kinds: Mapping[str, str],
    params: MatchParams,
) -> FaultScore:
    """``kinds``: device id → kind. ``floods``: the waterlogging ticket outcomes."""
    false_floods = [t for t in floods if t.incident_id is None]
    rows: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for inc, out in zip(faults, fault_outcomes, strict=True):
        kind = kinds.get(inc.site, "?")
        row = rows[(kind, inc.detail or "?")]
        row[0] += 1
        row[1] += int(out.ticketed)
        hi = None if inc.end is None else inc.end + timedelta(minutes=params.after_min)
        # a skewed clock stamps readings (and so tickets) away from when they happened
        skewed = inc.detail == "clock_skew"
        row[2] += int(
            kind == "water"
            and any(
                t.incident_key.endswith(f":site-{inc.site}")
                and (skewed or inc.start <= t.created_at)
                and (skewed or hi is None or t.created_at <= hi)
                for t in false_floods
            )
        )
    table = tuple(FaultRow(k, f, *v) for (k, f), v in sorted(rows.items()))
    return FaultScore(
        rows=table,
        faults=sum(r.faults for r in table),
        as_maintenance=sum(r.as_maintenance for r in table),
        as_flood=sum(r.as_flood for r in table),
        maintenance_tickets=len(maintenance),
        maintenance_false=sum(1 for t in maintenance if t.incident_id is None),
    )


@dataclass(frozen=True)
class Scoreboard:
    categories: dict[str, CategoryScore]
    overall: CategoryScore
    faults: FaultScore
    incidents: tuple[IncidentOutcome, ...]
    tickets: tuple[TicketOutcome, ...]
    grids: int
    days: float
    calls_filed: int = 0  # complaint rows in the store
    calls_pre_empted_in_store: int = 0  # of which the store linked to a proactive ticket

    @property
    def duplicates(self) -> int:
        """Duplicate tickets over every incident, device faults included."""
        return sum(o.duplicates for o in self.incidents)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "grids": self.grids,
                "days": self.days,
                "duplicates": self.duplicates,
                "calls_filed": self.calls_filed,
                "calls_pre_empted_in_store": self.calls_pre_empted_in_store,
                "overall": self.overall,
                "categories": self.categories,
                "device_faults": self.faults,
                "targets": [asdict(t) for t in check_targets(self)],
                "incidents": [o for o in self.incidents if o.complained or o.ticketed],
                "false_tickets": [t for t in self.tickets if t.incident_id is None],
            }
        )


def _jsonable(doc: Any) -> Any:
    if isinstance(doc, datetime):
        return doc.isoformat().replace("+00:00", "Z")
    if hasattr(doc, "__dataclass_fields__"):
        return _jsonable(asdict(doc))
    if isinstance(doc, dict):
        return {str(k): _jsonable(v) for k, v in doc.items()}
    if isinstance(doc, list | tuple):
        return [_jsonable(v) for v in doc]
    if isinstance(doc, float) and not math.isfinite(doc):
        return None
    return doc


def score_run(
    tickets: Iterable[Mapping[str, Any]],
    incidents: Iterable[Mapping[str, Any]],
    complaints: Iterable[Mapping[str, Any]] = (),
    *,
    grids: int,
    duration_s: float,
    device_kinds: Mapping[str, str] | None = None,
    params: MatchParams = MatchParams(),
) -> Scoreboard:
    """The scoreboard of one run.

    ``tickets``: the store's tickets (id, incident_key, category, source, state,
    created_at, closed_at, why); ``incidents``: the truth's incident dicts;
    ``complaints``: the store's complaint rows (id, ticket_id); ``grids``: grids in the
    city (for false tickets per grid per day); ``device_kinds``: device id → kind.
    """
    recs = tickets_from_dicts(tickets)
    truth = incidents_from_dicts(incidents)
    calls = list(complaints)
    links = {str(c["id"]): str(c["ticket_id"]) for c in calls if c.get("ticket_id")}
    by_id = {t.id: t for t in recs}
    outcomes = [judge_incident(i, recs, by_id, links, params) for i in truth]
    ticket_outcomes = judge_tickets(recs, truth, params)
    days = duration_s / 86400.0
    grid_days = grids * days
    cats = sorted(({i.category for i in truth} | {t.category for t in recs}) - {DEVICE_FAULT})

    def of(cat: str | None) -> tuple[list[IncidentOutcome], list[TicketOutcome]]:
        def keep(c: str) -> bool:
            return c == cat if cat is not None else c != DEVICE_FAULT

        return (
            [o for o in outcomes if keep(o.category)],
            [t for t in ticket_outcomes if keep(t.category)],
        )

    categories = {c: score_category(c, *of(c), grid_days=grid_days) for c in cats}
    overall = score_category("overall", *of(None), grid_days=grid_days)
    fault_incs = [i for i in truth if i.category == DEVICE_FAULT]
    fault_outs = [o for o in outcomes if o.category == DEVICE_FAULT]
    faults = score_faults(
        fault_incs,
        fault_outs,
        [t for t in ticket_outcomes if t.category == DEVICE_FAULT],
        [t for t in ticket_outcomes if t.category == WATERLOGGING],
        device_kinds or {},
        params,
    )
    return Scoreboard(
        categories=categories,
        overall=overall,
        faults=faults,
        incidents=tuple(outcomes),
        tickets=tuple(ticket_outcomes),
        grids=grids,
        days=days,
        calls_filed=len(calls),
        calls_pre_empted_in_store=sum(1 for c in calls if c.get("pre_empted")),
    )


@dataclass(frozen=True)
class TargetCheck:
    name: str
    op: str
    target: float
    actual: float | None
    met: bool


def check_targets(board: Scoreboard) -> list[TargetCheck]:
    o = board.overall
    actual: dict[str, float | None] = {
        "pre-emption rate": o.preemption_rate,
        "median lead before the first call (min)": o.lead_complaint_min.median,
        "precision": o.precision,
        "duplicate tickets": float(board.duplicates),
    }
    out = []
    for name, op, target in TARGETS:
        value = actual[name]
        met = value is not None and (value >= target if op == ">=" else value == target)
        out.append(TargetCheck(name, op, target, value, met))
    return out
