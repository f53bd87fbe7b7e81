"""Store reading batches of the kinds that are only stored here: rain (every worker's
``RainView`` keeps the gauge states) and status (no scoring job yet).

At-least-once: the event is acked by the sink once its points are stored; a replay
overwrites the same points (same series and time).
"""

from __future__ import annotations

from typing import Any

import faust

from gridwatch.contracts import ReadingBatch
from gridwatch.influx import Point
from streams.agent import reading_agent
from streams.influx_sink import reading_points

KINDS = ("rain", "status")


async def _store(batch: ReadingBatch) -> list[Point]:
    return reading_points(batch.readings)


def register(app: faust.App, ctx: Any) -> None:
    for kind in KINDS:
        topic = ctx.readings(app, kind)
        app.agent(topic, name=f"store_{kind}", concurrency=1)(
            reading_agent(ctx, topic.get_topic_name(), _store)
        )
