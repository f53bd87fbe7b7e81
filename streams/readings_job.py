"""Store every reading batch in InfluxDB (at-least-once: the offset is committed only
after the write succeeded; a replay overwrites the same points)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import faust

from gridwatch.contracts import KINDS, DeadLetter, DeadLetterReason, ReadingBatch, parse_record
from gridwatch.errors import ContractError, SinkError
from gridwatch.influx import RetryableWriteError
from streams.influx_sink import reading_points

log = logging.getLogger(__name__)


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
    await ctx.deadletter.send(value=letter.model_dump_json().encode())


async def store_batch(ctx: Any, batch: ReadingBatch) -> None:
    """Write until it succeeds: blocking the partition is how InfluxDB back-pressure
    reaches Kafka, and nothing is acked that is not stored."""
    points = reading_points(batch.readings)
    delay = 0.5
    while True:
        try:
            await ctx.writer.write(points)
            return
        except RetryableWriteError as exc:
            log.warning("influx unavailable, holding partition error=%s delay_s=%.1f", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def register(app: faust.App, ctx: Any) -> None:
    for kind in KINDS:
        topic = ctx.readings(app, kind)

        async def agent(
            stream: faust.StreamT[bytes], topic_name: str = topic.get_topic_name()
        ) -> None:
            async for raw in stream:
                try:
                    batch = parse_record(ReadingBatch, raw)
                    await store_batch(ctx, batch)
                except ContractError as exc:
                    await dead_letter(
                        ctx, raw, topic_name, DeadLetterReason(exc.reason), exc.detail
                    )
                except SinkError as exc:
                    await dead_letter(ctx, raw, topic_name, DeadLetterReason.PROCESSING, str(exc))

        app.agent(topic, name=f"store_{kind}", concurrency=1)(agent)
