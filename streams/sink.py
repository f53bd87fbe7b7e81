"""Store points and dead-letter records from inside an agent, at-least-once."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from gridwatch.contracts import DeadLetter, DeadLetterReason
from gridwatch.influx import Point, RetryableWriteError

log = logging.getLogger(__name__)


async def store_points(ctx: Any, points: list[Point]) -> None:
    """Write until it succeeds: blocking the partition is how InfluxDB back-pressure
    reaches Kafka, and nothing is acked that is not stored."""
    delay = 0.5
    started = time.monotonic()
    while True:
        try:
            await ctx.writer.write(points)
            ctx.stats.sink_ms.add((time.monotonic() - started) * 1000)
            return
        except RetryableWriteError as exc:
            ctx.stats.sink_retries += 1
            log.warning("influx unavailable, holding partition error=%s delay_s=%.1f", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


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
