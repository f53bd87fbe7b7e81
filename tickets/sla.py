"""SLA sweep: escalation stages and reminders until acknowledged, breaches recorded."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from tickets import rules
from tickets.models import Ticket
from tickets.store import SYSTEM, TicketStore


class SlaSweeper(TicketStore):
    def sweep(self, now: datetime | None = None) -> dict[str, int]:
        """Escalate, remind and record breaches for every active ticket as of ``now``."""
        now = now or self.clock()
        counts = {"escalations": 0, "reminders": 0, "breaches": 0}
        with self.read_session() as rs:
            ids = list(
                rs.scalars(
                    # only tickets that can need something: unacknowledged ones (stages,
                    # reminders) and those past their resolve target not yet recorded
                    select(Ticket.id).where(
                        or_(
                            Ticket.state == "open",
                            and_(
                                Ticket.state.in_(("acknowledged", "dispatched")),
                                Ticket.resolve_due < now,
                                Ticket.resolve_breached.is_(False),
                            ),
                        )
                    )
                )
            )
        for tid in ids:

            def work(s: Session, tid: str = tid) -> dict[str, int]:
                return self._sweep_one(s, tid, now)

            for k, v in self._retrying(work, lambda: None).items():
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
                t.last_reminder_at = now  # the escalation is itself the reminder
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
