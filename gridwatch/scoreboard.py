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
* A flood is *blind* when its site's only sensor had failed (dead battery, dropout,
  stuck, drift) before it became complaint-worthy: no reading of its own could show it
  in time. The pre-emption rate *at working sensors* leaves those out.
* Precision *not retracted* leaves out the pre-alerts withdrawn by the forecast itself
  (they never reach an operator's queue as open tickets).
* Recall = incidents with any ticket (about it, or one its complaints were filed to)
  / incidents, over the complaint-worthy ones (headline) and over all.
* Duplicates: a ticket about an incident (or opened by its calls) raised while another
  of its tickets was still active, in event time (must be 0); *reactive* duplicates
  involve a calls' ticket (a call not linked to the active proactive ticket, or a
  proactive ticket raised beside a calls' ticket holding the incident's calls).
  Re-raised: a later ticket after the previous one closed while the incident went on
  (allowed, counted).
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
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from gridwatch.scoreboard_match import (
    BLIND_FAULTS,
    DEVICE_FAULT,
    DISMISSED,
    WATERLOGGING,
    IncidentOutcome,
    IncidentRec,
    MatchParams,
    TicketOutcome,
    TicketRec,
    blind_at,
    incidents_from_dicts,
    judge_incident,
    judge_tickets,
    tickets_about,
    tickets_from_dicts,
)

__all__ = [
    "BLIND_FAULTS",
    "DEVICE_FAULT",
    "DISMISSED",
    "TARGETS",
    "WATERLOGGING",
    "CategoryScore",
    "FaultScore",
    "IncidentOutcome",
    "IncidentRec",
    "MatchParams",
    "Scoreboard",
    "Spread",
    "TicketOutcome",
    "TicketRec",
    "check_targets",
    "incidents_from_dicts",
    "score_run",
    "tickets_about",
    "tickets_from_dicts",
]

# The targets (on rainstorm-50y and typhoon).
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("pre-emption rate", ">=", 0.90),
    ("median lead before the first call (min)", ">=", 20.0),
    ("precision", ">=", 0.90),
    ("duplicate tickets", "==", 0.0),
)


# -- figures -------------------------------------------------------------------------

DEFAULT_PARAMS = MatchParams()


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
    blind_complained: int  # called about, at a site whose sensor had failed
    preemption_rate_seeing: float | None  # over the others
    lead_complaint_min: Spread
    lead_worthy_min: Spread
    proactive_tickets: int
    true_tickets: int
    false_tickets: int
    precision: float | None
    precision_not_retracted: float | None  # over tickets not retracted as pre-alerts
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
    seeing = [o for o in complained if not o.blind]
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
        blind_complained=len(complained) - len(seeing),
        preemption_rate_seeing=_ratio(
            sum(1 for o in seeing if o.outcome == "pre-empted"), len(seeing)
        ),
        lead_complaint_min=Spread.of(leads),
        lead_worthy_min=Spread.of(lead_w),
        proactive_tickets=len(ticket_outcomes),
        true_tickets=len(true),
        false_tickets=false,
        precision=_ratio(len(true), len(ticket_outcomes)),
        precision_not_retracted=_ratio(
            sum(1 for t in true if t.state != "retracted"), len(ticket_outcomes) - len(retracted)
        ),
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
    maintenance_reraised: int  # raised again for a fault already ticketed (flapping)


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
        maintenance_reraised=sum(o.reraised for o in fault_outcomes),
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
    params: MatchParams = DEFAULT_PARAMS,
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
    fault_incs = [i for i in truth if i.category == DEVICE_FAULT]
    outcomes = [
        judge_incident(i, recs, by_id, links, params, blind_at(i, fault_incs)) for i in truth
    ]
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
