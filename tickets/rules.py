"""Pure ticket rules: the lifecycle table, raise decisions, SLA, escalation, linking.

Nothing here reads a clock, the environment or a database: every function takes
``now`` (or the times it needs) and returns values, so the table-driven unit tests in
``tests/unit/tickets`` cover the whole policy.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from tickets.config import EscalationStage, SlaTarget

STATES: tuple[str, ...] = (
    "pre_alert",
    "open",
    "acknowledged",
    "dispatched",
    "resolved",
    "auto_resolved",
    "retracted",
    "false_alarm",
)
ACTIVE_STATES: frozenset[str] = frozenset({"pre_alert", "open", "acknowledged", "dispatched"})
TERMINAL_STATES: frozenset[str] = frozenset(STATES) - ACTIVE_STATES

# from-state → the states it may move to. Anything not listed is illegal.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "pre_alert": frozenset({"open", "retracted", "false_alarm"}),
    "open": frozenset({"acknowledged", "dispatched", "auto_resolved", "false_alarm"}),
    "acknowledged": frozenset({"dispatched", "resolved", "auto_resolved", "false_alarm"}),
    "dispatched": frozenset({"resolved", "false_alarm"}),
    "resolved": frozenset(),
    "auto_resolved": frozenset(),
    "retracted": frozenset(),
    "false_alarm": frozenset(),
}

# Operator actions and the state each one leads to.
ACTION_STATE: Mapping[str, str] = {
    "acknowledge": "acknowledged",
    "dispatch": "dispatched",
    "resolve": "resolved",
    "false_alarm": "false_alarm",
}

CLOSING_CODES: tuple[str, ...] = ("real", "false_alarm", "duplicate", "already_fixed")
SEVERITY_RANK: Mapping[str, int] = {"info": 0, "minor": 1, "major": 2, "critical": 3}


def is_legal(from_state: str, to_state: str) -> bool:
    return to_state in TRANSITIONS.get(from_state, frozenset())


def is_active(state: str) -> bool:
    return state in ACTIVE_STATES


def higher_severity(a: str, b: str) -> str:
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


# -- raising -----------------------------------------------------------------------

RaiseAction = Literal["create", "promote", "evidence", "auto_resolve", "retract", "ignore"]


@dataclass(frozen=True)
class RaiseDecision:
    action: RaiseAction
    state: str | None  # the ticket's state after the alert (None: no ticket)
    escalate: bool  # the alert raises the ticket's severity
    reason: str


def decide_raise(
    active_state: str | None,
    active_severity: str | None,
    alert_kind: str,
    alert_severity: str,
) -> RaiseDecision:
    """What an alert does to the incident's active ticket (or to no ticket)."""
    if active_state is None:
        if alert_kind == "forecast":
            return RaiseDecision("create", "pre_alert", False, "forecast opens a pre-alert")
        if alert_kind in ("observed", "maintenance"):
            return RaiseDecision("create", "open", False, f"{alert_kind} alert opens a ticket")
        return RaiseDecision("ignore", None, False, f"{alert_kind} alert but no active ticket")
    assert active_severity is not None
    escalate = SEVERITY_RANK[alert_severity] > SEVERITY_RANK[active_severity]
    if active_state == "pre_alert":
        if alert_kind in ("observed", "maintenance"):
            return RaiseDecision("promote", "open", escalate, "forecast came true")
        if alert_kind in ("recede", "clear"):
            return RaiseDecision("retract", "retracted", False, "forecast receded")
        return RaiseDecision("evidence", "pre_alert", escalate, "forecast updated")
    if alert_kind == "clear" and is_legal(active_state, "auto_resolved"):
        return RaiseDecision("auto_resolve", "auto_resolved", False, "cleared before dispatch")
    if alert_kind in ("clear", "recede"):
        return RaiseDecision("evidence", active_state, False, f"{alert_kind} noted")
    return RaiseDecision("evidence", active_state, escalate, "more evidence")


# -- SLA and escalation ----------------------------------------------------------------


def due_times(sla: SlaTarget, opened_at: datetime) -> tuple[datetime, datetime]:
    """(acknowledge by, resolve by) for a ticket opened at ``opened_at``."""
    return (
        opened_at + timedelta(minutes=sla.ack_min),
        opened_at + timedelta(minutes=sla.resolve_min),
    )


def escalation_stage(
    ack_due: datetime | None, now: datetime, stages: Sequence[EscalationStage]
) -> int:
    """How many escalation stages an unacknowledged ticket has reached by ``now``."""
    if ack_due is None:
        return 0
    return sum(1 for s in stages if now >= ack_due + timedelta(minutes=s.after_ack_due_min))


def reminder_due(
    opened_at: datetime, last_reminder_at: datetime | None, now: datetime, every_min: int
) -> bool:
    """An unacknowledged ticket is reminded every ``every_min`` minutes after opening."""
    since = last_reminder_at or opened_at
    return now - since >= timedelta(minutes=every_min)


def breached(due: datetime | None, done_at: datetime | None, now: datetime) -> bool:
    """A target is breached when it was met late, or is not met and already past."""
    if due is None:
        return False
    return (done_at or now) > due


# -- complaints ---------------------------------------------------------------------

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def complaint_matches(
    ticket_point: tuple[float, float] | None,
    ticket_opened_at: datetime,
    complaint_point: tuple[float, float],
    complaint_ts: datetime,
    max_distance_m: float,
    window_min: int,
) -> bool:
    """Whether a complaint belongs to an active ticket of its grid and category.

    The ticket must have been raised within ``window_min`` before the complaint (or
    after it, within the same window: the hotline may log late) and, when the ticket
    has a location, lie within ``max_distance_m`` of the complaint.
    """
    if abs(complaint_ts - ticket_opened_at) > timedelta(minutes=window_min):
        return False
    if ticket_point is None:
        return True
    return distance_m(*ticket_point, *complaint_point) <= max_distance_m


def lead_minutes(proactive_since: datetime | None, complaint_ts: datetime) -> float | None:
    """Minutes a proactive ticket existed before the complaint, or None if it did not."""
    if proactive_since is None or proactive_since >= complaint_ts:
        return None
    return round((complaint_ts - proactive_since).total_seconds() / 60.0, 2)


# -- outcomes and KPIs ---------------------------------------------------------------


def precision(codes: Iterable[str]) -> float | None:
    """Share of closed tickets that were real (real or already fixed) among those judged.

    Duplicates are neither right nor wrong about the world and are left out.
    """
    tp = fp = 0
    for code in codes:
        if code in ("real", "already_fixed"):
            tp += 1
        elif code == "false_alarm":
            fp += 1
    return None if tp + fp == 0 else round(tp / (tp + fp), 4)


def precision_by(pairs: Iterable[tuple[str, str]]) -> dict[str, dict[str, float | int | None]]:
    """``{key: {precision, real, false_alarm, duplicate, already_fixed, n}}``."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key, code in pairs:
        groups[key].append(code)
    out: dict[str, dict[str, float | int | None]] = {}
    for key in sorted(groups):
        codes = groups[key]
        row: dict[str, float | int | None] = {c: codes.count(c) for c in CLOSING_CODES}
        row["n"] = len(codes)
        row["precision"] = precision(codes)
        out[key] = row
    return out


def minutes_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds() / 60.0


def mean_or_none(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.fmean(vals), 2) if vals else None


def median_or_none(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return round(statistics.median(vals), 2) if vals else None


def queue_sort_key(
    severity: str, state: str, ack_due: datetime | None, resolve_due: datetime | None
) -> tuple[int, int, float]:
    """Watch-floor order: most severe first, then the nearest due time; pre-alerts last."""
    due = current_due(state, ack_due, resolve_due)
    return (
        1 if state == "pre_alert" else 0,
        -SEVERITY_RANK.get(severity, 0),
        due.timestamp() if due is not None else math.inf,
    )


def current_due(
    state: str, ack_due: datetime | None, resolve_due: datetime | None
) -> datetime | None:
    """The target the watch floor works against: acknowledge while open, then resolve."""
    return ack_due if state == "open" else resolve_due


# -- storm mode: periods and the queue rolled up per grid ---------------------------------

StormAction = Literal["storm_start", "storm_end", "storm_join"]


@dataclass(frozen=True)
class StormSpan:
    started_at: datetime
    ended_at: datetime | None  # None: the storm goes on
    peak_share: float


def storm_merge(
    period: StormSpan | None, on: bool, started_at: datetime, ended_at: datetime, peak: float
) -> tuple[StormAction, StormSpan]:
    """What a storm alert makes of the period it belongs to (``None``: no period yet).

    ``on``: a ``storm_on`` alert for a storm from ``started_at``; otherwise a
    ``storm_off`` for one from ``started_at`` to ``ended_at``. A second alert of the same
    storm (another worker's view, a restarted worker, a late one after the period closed)
    joins it: the earliest start, the highest peak, the latest end once ended."""
    if period is None:
        if on:
            return "storm_start", StormSpan(started_at, None, peak)
        return "storm_end", StormSpan(started_at, max(ended_at, started_at), peak)
    start = min(period.started_at, started_at)
    top = max(period.peak_share, peak)
    if period.ended_at is None:
        if on:
            return "storm_join", StormSpan(start, None, top)
        return "storm_end", StormSpan(start, max(ended_at, start), top)
    end = period.ended_at if on else max(period.ended_at, ended_at)
    return "storm_join", StormSpan(start, end, top)


class QueuedTicket(Protocol):
    """What the roll-up reads of an active ticket (``tickets.models.Ticket`` has it)."""

    id: str
    grid_id: str
    district_id: str
    category: str
    severity: str
    state: str
    created_at: datetime
    ack_due: datetime | None
    resolve_due: datetime | None
    ack_breached: bool
    resolve_breached: bool


@dataclass(frozen=True)
class GridRollup:
    """One grid's active tickets as one queue row."""

    grid_id: str
    district_id: str
    storm: bool  # its district is in storm mode
    tickets: int
    counts: dict[str, dict[str, int]]  # category → state → tickets
    worst_severity: str
    earliest_due: datetime | None  # nearest acknowledge / resolve target
    breached: int  # tickets past (or recorded past) a target
    oldest_at: datetime  # the earliest raised
    ticket_ids: tuple[str, ...]  # in watch-floor order


def is_breached(t: QueuedTicket, now: datetime) -> bool:
    due = current_due(t.state, t.ack_due, t.resolve_due)
    return bool(t.ack_breached or t.resolve_breached) or breached(due, None, now)


def roll_up(
    tickets: Iterable[QueuedTicket], now: datetime, storm_districts: Collection[str] = ()
) -> list[GridRollup]:
    """Active tickets grouped per grid, in watch-floor order: grids with a ticket past
    pre-alert first, then the worst severity, the nearest due time, the grid id."""
    by_grid: dict[str, list[QueuedTicket]] = defaultdict(list)
    for t in tickets:
        by_grid[t.grid_id].append(t)
    rows = []
    for grid, ts in by_grid.items():
        ts.sort(
            key=lambda t: (*queue_sort_key(t.severity, t.state, t.ack_due, t.resolve_due), t.id)
        )
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for t in ts:
            counts[t.category][t.state] += 1
        dues = [d for t in ts if (d := current_due(t.state, t.ack_due, t.resolve_due)) is not None]
        rows.append(
            GridRollup(
                grid_id=grid,
                district_id=ts[0].district_id,
                storm=ts[0].district_id in storm_districts,
                tickets=len(ts),
                counts={c: dict(sorted(s.items())) for c, s in sorted(counts.items())},
                worst_severity=max((t.severity for t in ts), key=lambda v: SEVERITY_RANK.get(v, 0)),
                earliest_due=min(dues, default=None),
                breached=sum(is_breached(t, now) for t in ts),
                oldest_at=min(t.created_at for t in ts),
                ticket_ids=tuple(t.id for t in ts),
            )
        )

    def order(r: GridRollup) -> tuple[int, int, float, str]:
        all_pre = all(s == "pre_alert" for c in r.counts.values() for s in c)
        due = r.earliest_due.timestamp() if r.earliest_due is not None else math.inf
        return (1 if all_pre else 0, -SEVERITY_RANK.get(r.worst_severity, 0), due, r.grid_id)

    return sorted(rows, key=order)
