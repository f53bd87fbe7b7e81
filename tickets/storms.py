"""Storm periods: a district's storm mode alerts recorded as one row per rainstorm.

The rain job sends ``storm_on`` / ``storm_off`` alerts on incident ``storm:{district}``
(``streams.alerts.storm_alert``); the ticketing job hands them to ``raise_alert`` like
every alert, which records them here instead of deciding about a ticket: a storm never
opens one. Idempotent by alert id (``seen_alerts``, as for every alert); the partial
unique index on open periods makes two workers (or a restarted one) recording the same
storm end in one period, and ``rules.storm_merge`` joins their alerts into it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gridwatch.contracts import Alert
from tickets import rules
from tickets.errors import TicketError, UnknownLocation
from tickets.models import StormPeriod
from tickets.store import TicketStore


def _time(evidence: dict[str, Any], key: str, alert: Alert) -> datetime:
    value = evidence.get(key)
    if value is None:
        return alert.ts
    try:
        ts = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        ts = None
    if ts is None or ts.tzinfo is None:
        raise TicketError(f"storm alert {alert.alert_id!r}: evidence.{key} is not a UTC time")
    if ts > alert.ts:
        raise TicketError(f"storm alert {alert.alert_id!r}: evidence.{key} is after the alert")
    return ts


def _share(evidence: dict[str, Any], alert: Alert) -> float:
    value = evidence.get("peak_share", evidence.get("share", 0.0))
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise TicketError(f"storm alert {alert.alert_id!r}: peak_share must be within 0..1")
    return float(value)


class StormRecorder(TicketStore):
    def _check_storm(self, alert: Alert) -> None:
        grid = self.registry.grids.get(alert.grid_id)
        if grid is None or grid.level != "district":
            raise UnknownLocation(
                f"storm alert {alert.alert_id!r}: {alert.grid_id!r} is not a district"
            )

    def _storm_once(self, s: Session, alert: Alert) -> rules.StormAction:
        """Record one storm alert (its id not seen yet) in the caller's transaction."""
        on = alert.kind == "storm_on"
        started = _time(alert.evidence, "started_at", alert)
        ended = alert.ts if on else _time(alert.evidence, "ended_at", alert)
        if ended < started:
            raise TicketError(f"storm alert {alert.alert_id!r}: it ends before it starts")
        row = self._storm_of(s, alert.district_id, on, started, ended)
        span = (
            None if row is None else rules.StormSpan(row.started_at, row.ended_at, row.peak_share)
        )
        action, new = rules.storm_merge(span, on, started, ended, _share(alert.evidence, alert))
        now = self.clock()
        if row is None:
            row = StormPeriod(district_id=alert.district_id, alert_ids=[], created_at=now)
            s.add(row)
        row.started_at, row.ended_at, row.peak_share = new.started_at, new.ended_at, new.peak_share
        row.alert_ids = [*row.alert_ids, alert.alert_id]  # a new list: JSON is not mutable
        row.updated_at = now
        s.flush()  # the open-period index speaks here if another worker won
        return action

    def _storm_of(
        self, s: Session, district: str, on: bool, started: datetime, ended: datetime
    ) -> StormPeriod | None:
        """The period an alert belongs to: the open one (for an ``on``, or an ``off``
        not older than it), else the latest closed one overlapping [started, ended]."""
        base = select(StormPeriod).where(StormPeriod.district_id == district).with_for_update()
        current = s.scalars(base.where(StormPeriod.ended_at.is_(None))).first()
        if current is not None and (on or current.started_at <= ended):
            return current
        return s.scalars(
            base.where(
                StormPeriod.ended_at.is_not(None),
                StormPeriod.started_at <= ended,
                StormPeriod.ended_at >= started,
            )
            .order_by(StormPeriod.started_at.desc())
            .limit(1)
        ).first()

    def open_storms(self) -> dict[str, tuple[datetime, float]]:
        """District → (start, peak share) of every storm still going on."""
        with self.read_session() as s:
            rows = s.scalars(select(StormPeriod).where(StormPeriod.ended_at.is_(None)))
            return {r.district_id: (r.started_at, r.peak_share) for r in rows}
