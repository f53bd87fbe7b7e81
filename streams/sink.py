"""The worker's InfluxDB sink: batched by size and time, at-least-once, spooled when down.

Agents hand ``Sink.put`` the points of one Kafka event together with a callback that
acks the event. Points from every agent of the worker go out in one write per
``influx.batch_points`` or per ``influx.flush_interval_ms``, whichever comes first, and
an event is acked only once the write holding its points succeeded — or the points are
safely in the local spool — so a worker killed at any moment leaves its unwritten events
unacked and Kafka redelivers them. InfluxDB keeps one point per series and time, so a
redelivered event never shows twice.

When InfluxDB is unreachable (or answers 5xx/404/408/429) after a few retries, the
batch is written to the spool (``streams.spool``) and acked; while the spool holds
anything, new batches go behind it so points reach InfluxDB in order; a drain loop
retries the oldest file with backoff. If the spool is full the sink holds the batch and
retries in place: the agents block on ``put`` and Kafka absorbs the backlog.

A batch InfluxDB refuses for its content (400: a field type conflict, say) is split in
halves until the offending lines are isolated; they are dead-lettered with reason
``sink_rejected`` and the rest is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gridwatch.contracts import DeadLetter, DeadLetterReason
from gridwatch.errors import SinkError
from gridwatch.influx import InfluxWriter, Point, RetryableWriteError, to_line
from gridwatch.retry import Backoff
from streams.spool import Spool

log = logging.getLogger(__name__)

Ack = Callable[[], Awaitable[Any]]
Reject = Callable[[str, str], Awaitable[None]]


@dataclass
class _Batch:
    lines: list[str] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    started: float = 0.0


class Sink:
    def __init__(
        self,
        writer: InfluxWriter,
        spool: Spool,
        *,
        stats: Any,
        reject: Reject,
        batch_points: int = 5000,
        flush_interval_s: float = 0.1,
        max_buffered: int = 50_000,
        write_retries: int = 2,
    ) -> None:
        self.writer = writer
        self.spool = spool
        self.stats = stats
        self.reject = reject
        self.batch_points = batch_points
        self.flush_interval_s = flush_interval_s
        self.max_buffered = max_buffered
        self.write_retries = write_retries
        self._batch = _Batch()
        self._queue: asyncio.Queue[_Batch] = asyncio.Queue()
        self._buffered = 0
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._drained = asyncio.Event()

    # -- agents' side ----------------------------------------------------------------

    async def put(self, points: list[Point], ack: Ack | None = None) -> None:
        """Queue ``points``; ``ack`` runs once they are stored (or spooled)."""
        lines = [to_line(p) for p in points]  # raises SinkError before anything is queued
        await self._room.wait()
        batch = self._batch
        if not batch.lines and not batch.acks:
            batch.started = time.monotonic()
        batch.lines.extend(lines)
        if ack is not None:
            batch.acks.append(ack)
        self._buffered += len(points)
        if self._buffered >= self.max_buffered:
            self._room.clear()
        if len(batch.lines) >= self.batch_points:
            self._seal()

    def _seal(self) -> None:
        if self._batch.lines or self._batch.acks:
            self._queue.put_nowait(self._batch)
            self._batch = _Batch()

    async def flush(self) -> None:
        """Seal what is buffered and wait until every queued batch is done (tests,
        shutdown)."""
        self._seal()
        while self._queue.qsize() or self._buffered:
            self._drained.clear()
            await self._drained.wait()

    # -- background tasks --------------------------------------------------------------

    async def run_timer(self) -> None:
        """Seal the open batch once its oldest point waited ``flush_interval_s``."""
        while True:
            batch = self._batch
            if batch.lines or batch.acks:
                wait = batch.started + self.flush_interval_s - time.monotonic()
                if wait <= 0:
                    self._seal()
                    continue
                await asyncio.sleep(wait)
            else:
                await asyncio.sleep(self.flush_interval_s)

    async def run_writer(self) -> None:
        while True:
            batch = await self._queue.get()
            await self._store(batch.lines)
            for ack in batch.acks:
                await ack()
            self.stats.sink_ms.add((time.monotonic() - batch.started) * 1000)
            self._buffered -= len(batch.lines)
            if self._buffered < self.max_buffered:
                self._room.set()
            if not self._queue.qsize():
                self._drained.set()

    async def run_drain(self) -> None:
        """Write spooled batches back, oldest first, once InfluxDB answers again."""
        backoff = Backoff(0.5, 10.0)
        while True:
            files = self.spool.files()
            if not files:
                await asyncio.sleep(1.0)
                continue
            try:
                for path in files:
                    with self.spool.claim(path) as lines:
                        if lines:
                            await self._write_checked(lines)
                            self.stats.spool_drained += len(lines)
                backoff.reset()
            except RetryableWriteError as exc:
                wait = backoff.next()
                log.warning("spool drain waiting for InfluxDB error=%s delay_s=%.1f", exc, wait)
                await asyncio.sleep(wait)

    # -- storing -------------------------------------------------------------------------

    async def _store(self, lines: list[str]) -> None:
        """Return once ``lines`` are in InfluxDB or in the spool."""
        backoff = Backoff(0.5, 10.0)
        while True:
            if self.spool and self.spool.has_room(lines):
                self._spool(lines)  # behind what is already spooled: order is kept
                return
            try:
                await self._write_checked(lines, retries=self.write_retries)
                return
            except RetryableWriteError as exc:
                if self.spool.has_room(lines):
                    log.warning("influx unavailable, spooling error=%s", exc)
                    self._spool(lines)
                    return
                self.stats.sink_retries += 1
                log.warning("influx unavailable and spool full, holding error=%s", exc)
                await asyncio.sleep(backoff.next())

    def _spool(self, lines: list[str]) -> None:
        if lines:
            self.spool.append(lines)
            self.stats.spooled += len(lines)

    async def _write_checked(self, lines: list[str], retries: int | None = None) -> None:
        """Write, isolating lines InfluxDB refuses (non-retryable) by bisection."""
        if not lines:
            return
        try:
            await self.writer.write_lines(lines, retries=retries)
        except RetryableWriteError:
            raise
        except SinkError as exc:
            if len(lines) == 1:
                self.stats.sink_rejected += 1
                await self.reject(lines[0], str(exc))
                return
            mid = len(lines) // 2
            await self._write_checked(lines[:mid], retries)
            await self._write_checked(lines[mid:], retries)


async def dead_letter(
    ctx: Any, raw: bytes, topic: str, reason: DeadLetterReason, detail: str
) -> None:
    letter = DeadLetter(
        reason=reason,
        detail=detail[:2000],
        topic=topic,
        raw=raw[:65_536],
        received_at=datetime.now(UTC),
        stage="streams",
    )
    ctx.stats.dead_lettered += 1
    await ctx.deadletter.send(value=letter.model_dump_json().encode())
