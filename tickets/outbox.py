"""The outbox relay: publishes ticket events committed with each change, once per row.

Every ticket change writes an ``outbox`` row in its own transaction (``service.py``).
``OutboxRelay`` reads unpublished rows in commit-id order, hands a batch to an injected
``Publisher`` and marks the rows published **only after the publisher returned** (the
publisher's acknowledgement). A crash between the acknowledgement and the mark hands
the same rows over again after restart, so a publisher must be idempotent by
``event_id`` (Kafka: key and header ``event_id``, consumers or a transactional producer
drop repeats; InfluxDB: same series and time overwrite). With such a publisher every row
is published exactly once, which ``tests/integration/tickets/test_outbox.py`` checks by
killing a relay process mid-batch.

Run one relay per ticket store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import DBAPIError

from gridwatch.contracts import TicketEvent
from gridwatch.retry import Backoff
from tickets.db import session_factory
from tickets.errors import OutboxError
from tickets.models import OutboxRow

log = logging.getLogger(__name__)

TOPIC = "gw.tickets"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MEASUREMENT = "ticket"


@dataclass(frozen=True)
class OutboxMessage:
    seq: int  # outbox row id: increasing in commit order per incident
    event_id: str  # stable across re-deliveries: the idempotency key
    key: str  # incident key: the Kafka partition key
    event: TicketEvent
    # extra facts of the change (complaint events: complaint_id, pre_empted, lead_min)
    detail: dict[str, Any] = field(default_factory=dict)


def _message(r: OutboxRow) -> OutboxMessage:
    payload = dict(r.payload)
    detail = payload.pop("detail", None) or {}
    return OutboxMessage(
        seq=r.id,
        event_id=r.event_id,
        key=r.key,
        event=TicketEvent.model_validate_json(json.dumps(payload)),
        detail=detail,
    )


class Publisher(Protocol):
    """Where the relay sends events. ``publish`` returns only once every message is
    durably accepted, raises on failure (nothing is marked), and tolerates receiving a
    message again (same ``event_id``) after a crash."""

    async def publish(self, batch: Sequence[OutboxMessage]) -> None: ...


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    failures: int = 0
    last_error: str = ""


class OutboxRelay:
    def __init__(
        self,
        engine: Engine,
        publisher: Publisher,
        *,
        batch_size: int = 200,
        poll_s: float = 0.5,
        max_backoff_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_s = poll_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock
        self.stats = RelayStats()
        self._session = session_factory(engine)

    def _claim(self) -> list[OutboxMessage]:
        with self._session.begin() as s:
            rows = list(
                s.scalars(
                    select(OutboxRow)
                    .where(OutboxRow.published_at.is_(None))
                    .order_by(OutboxRow.id)
                    .limit(self.batch_size)
                    .with_for_update(skip_locked=True)
                )
            )
            for r in rows:
                r.attempts += 1
            return [_message(r) for r in rows]

    def _mark(self, seqs: list[int]) -> None:
        with self._session.begin() as s:
            s.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(seqs), OutboxRow.published_at.is_(None))
                .values(published_at=self.clock())
            )

    def pending(self) -> int:
        with self._session() as s:
            q = select(func.count()).where(OutboxRow.published_at.is_(None))
            return int(s.scalar(q) or 0)

    async def run_once(self) -> int:
        """Publish one batch; return how many rows it held (0: nothing pending)."""
        batch = await asyncio.to_thread(self._claim)
        if not batch:
            return 0
        try:
            await self.publisher.publish(batch)
        except Exception as exc:
            self.stats.failures += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
            raise OutboxError(f"publishing {len(batch)} ticket events failed: {exc}") from exc
        await asyncio.to_thread(self._mark, [m.seq for m in batch])
        self.stats.published += len(batch)
        self.stats.batches += 1
        return len(batch)

    async def drain(self) -> int:
        """Publish until nothing is pending; return how many were published."""
        total = 0
        while n := await self.run_once():
            total += n
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; publisher failures and a store that went away (a
        database restart) back off and retry: a claimed batch not marked published is
        claimed again, and consumers drop repeats by event id."""
        backoff = Backoff(self.poll_s, max(self.poll_s, self.max_backoff_s))
        while not stop.is_set():
            wait = self.poll_s
            try:
                n = await self.run_once()
                backoff.reset()
            except OutboxError as exc:
                wait = backoff.next()
                log.warning("outbox relay publish failed error=%s retry_s=%.1f", exc, wait)
                n = 0
            except DBAPIError as exc:  # the store restarting: claim again once it is back
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
                wait = backoff.next()
                log.warning("outbox relay cannot reach the store error=%s retry_s=%.1f", exc, wait)
                n = 0
            if n == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)


@dataclass
class RecordingPublisher:
    """In-process publisher that keeps what it was given (tests, the bench)."""

    messages: list[OutboxMessage] = field(default_factory=list)
    fail_next: int = 0

    async def publish(self, batch: Sequence[OutboxMessage]) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("recording publisher told to fail")
        self.messages.extend(batch)


class JsonlPublisher:
    """Appends events as JSON lines, fsynced; idempotent by ``event_id`` across restarts.

    A development sink (``gridwatch tickets relay --jsonl FILE``) and the sink of the
    relay crash test. On start it reads the ids already in the file (dropping a torn last
    line) so a re-delivered event is not written twice.
    """

    def __init__(self, path: Path, *, delay_per_message_s: float = 0.0) -> None:
        self.path = path
        self.delay = delay_per_message_s
        self.seen: set[str] = set()
        if path.exists():
            data = path.read_bytes()
            cut = data.rfind(b"\n") + 1
            if cut != len(data):
                with path.open("r+b") as fh:
                    fh.truncate(cut)
            for line in data[:cut].splitlines():
                self.seen.add(json.loads(line)["event_id"])

    async def publish(self, batch: Sequence[OutboxMessage]) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            for m in batch:
                if m.event_id in self.seen:
                    continue
                line = {"seq": m.seq, "event_id": m.event_id, "key": m.key}
                line["event"] = m.event.model_dump(mode="json")
                fh.write(json.dumps(line, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                self.seen.add(m.event_id)
                if self.delay:
                    await asyncio.sleep(self.delay)


class FanoutPublisher:
    """Publish every batch to several sinks (e.g. Kafka ``gw.tickets`` and InfluxDB)."""

    def __init__(self, *publishers: Publisher) -> None:
        self.publishers = publishers

    async def publish(self, batch: Sequence[OutboxMessage]) -> None:
        for p in self.publishers:
            await p.publish(batch)


# -- wire formats for the real sinks (the lead wires the clients) ---------------------


def kafka_record(m: OutboxMessage) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) for topic ``gw.tickets``: keyed by incident, ``event_id``
    in a header so consumers can drop a re-delivered event."""
    headers = [("event_id", m.event_id.encode()), ("outbox_seq", str(m.seq).encode())]
    return m.key.encode(), m.event.model_dump_json().encode(), headers


def _tag(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _str_field(v: str) -> str:
    # line protocol has no escape for line breaks: they become spaces
    flat = v.replace("\r", " ").replace("\n", " ")
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def influx_line(m: OutboxMessage) -> str:
    """One InfluxDB line (measurement ``ticket``, ns precision) for an event.

    The schema of ``streams.influx_sink.ticket_point``: tags grid, category, severity,
    state, event (all bounded); fields ticket_id, incident, actor, reason, value=1, plus
    the outbox ``seq`` and, on ``complaint`` events, ``pre_empted`` (0/1) and
    ``lead_min``. The time is the event's millisecond plus its outbox ``seq`` in
    nanoseconds (mod 10⁶): two events with the same tags in the same millisecond (a
    create and its pre-alert, a burst of complaints) stay two points, and writing the
    same event again overwrites its own point.
    """
    e = m.event
    tags = ",".join(
        f"{k}={_tag(v)}"
        for k, v in (
            ("grid", e.grid_id),
            ("category", e.category.value),
            ("severity", e.severity.value),
            ("state", e.state),
            ("event", e.event),
        )
    )
    fields = [
        f"ticket_id={_str_field(e.ticket_id)}",
        f"incident={_str_field(e.incident_key)}",
        f"actor={_str_field(e.actor)}",
        f"reason={_str_field(e.reason)}",
        "value=1i",
        f"seq={m.seq}i",
    ]
    if e.event == "complaint" and "pre_empted" in m.detail:
        fields.append(f"pre_empted={1 if m.detail['pre_empted'] else 0}i")
        lead = m.detail.get("lead_min")
        if isinstance(lead, int | float):
            fields.append(f"lead_min={float(lead)}")
    ms = (e.ts - _EPOCH) // timedelta(milliseconds=1)
    return f"{MEASUREMENT},{tags} {','.join(fields)} {ms * 1_000_000 + m.seq % 1_000_000}"
