"""Store reading batches of the kinds that are only stored here: rain (every worker's
``RainView`` keeps the gauge states) and status (no scoring job yet).

At-least-once: the offset moves only after the write succeeded; a replay overwrites the
same points (same series and time).
"""

from __future__ import annotations

from typing import Any

import faust

from gridwatch.contracts import DeadLetterReason, ReadingBatch, parse_record
from gridwatch.errors import ContractError, SinkError
from streams.influx_sink import reading_points
from streams.sink import dead_letter, store_points

KINDS = ("rain", "status")


def register(app: faust.App, ctx: Any) -> None:
    for kind in KINDS:
        topic = ctx.readings(app, kind)

        async def agent(
            stream: faust.StreamT[bytes], topic_name: str = topic.get_topic_name()
        ) -> None:
            async for raw in stream:
                try:
                    batch = parse_record(ReadingBatch, raw)
                    await store_points(ctx, reading_points(batch.readings))
                    ctx.stats.readings += len(batch.readings)
                except ContractError as exc:
                    await dead_letter(
                        ctx, raw, topic_name, DeadLetterReason(exc.reason), exc.detail
                    )
                except SinkError as exc:
                    await dead_letter(ctx, raw, topic_name, DeadLetterReason.PROCESSING, str(exc))

        app.agent(topic, name=f"store_{kind}", concurrency=1)(agent)
