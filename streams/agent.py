"""The loop every reading agent shares: parse, handle, hand points to the sink, ack later.

``reading_agent(ctx, topic_name, handle)`` returns a Faust agent function. Each Kafka
event (one ``ReadingBatch``) is parsed once and given to ``handle(batch)``, which
updates tables, emits alerts and assessments, and returns the InfluxDB points. The
event is acked by the sink only once those points are stored, so the agent never waits
for InfluxDB (manual acks: ``stream.noack()``). A record that cannot be parsed or
handled is dead-lettered with its reason and acked in order behind the others.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import faust

from gridwatch.contracts import DeadLetterReason, ReadingBatch, parse_record
from gridwatch.errors import ContractError, SinkError
from gridwatch.influx import Point
from streams.codec import NAME as CODEC
from streams.sink import dead_letter
from streams.tables import state_table

log = logging.getLogger(__name__)

Handler = Callable[[ReadingBatch], Awaitable[list[Point]]]


def reading_agent(ctx: Any, topic_name: str, handle: Handler) -> Callable[..., Any]:
    async def agent(stream: faust.Stream) -> None:
        manual = stream.noack()
        async for event in manual.events():
            raw: bytes = event.value
            points: list[Point] = []
            try:
                batch = parse_record(ReadingBatch, raw)
                points = await handle(batch)
                ctx.stats.readings += len(batch.readings)
            except ContractError as exc:
                await dead_letter(ctx, raw, topic_name, DeadLetterReason(exc.reason), exc.detail)
            except Exception as exc:  # one bad record never stops the agent
                log.exception("batch of %s failed", topic_name)
                await dead_letter(ctx, raw, topic_name, DeadLetterReason.PROCESSING, repr(exc))
            ack = partial(manual.ack, event)
            try:
                await ctx.sink.put(points, ack)
            except SinkError as exc:  # a point that cannot be written at all
                await dead_letter(ctx, raw, topic_name, DeadLetterReason.PROCESSING, str(exc))
                await ctx.sink.put([], ack)

    return agent


def device_table(app: faust.App, ctx: Any, name: str) -> Any:
    """A table of per-device state documents (MessagePack: ``streams.codec``),
    co-partitioned with the readings, read back from its changelog with that codec."""

    async def replayed(event: Any) -> None:  # a changelog record read back into the table
        ctx.stats.replayed[name] = ctx.stats.replayed.get(name, 0) + 1

    return state_table(
        app,
        name,
        codec=CODEC,
        partitions=ctx.settings.kafka.partitions,
        on_changelog_event=replayed,
    )
