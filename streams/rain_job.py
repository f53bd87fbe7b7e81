"""Rain job: per-gauge rain state, intensity, accumulations and nowcast; storm cells.

* the ``rain`` agent keeps each gauge's rain state in a table co-partitioned with
  ``gw.readings.rain``, stores the readings and one assessment per gauge and batch
  (measurement ``assessment``, kind=rain: rate, accumulations, rain expected in the next
  15/30/60 minutes) and emits the assessments to ``gw.assessments``;
* every worker's ``RainView`` (``streams.views``) sees every gauge; a timer turns it
  into the storm picture — rain rate and next hour per grid, storm cells of touching
  grids in heavy rain, storm mode per district — written to InfluxDB (``rain_grid``,
  ``storm``) at the minute of the newest rain reading. Every worker writes the same
  points, which InfluxDB keeps once; the picture also tells the other jobs whether a
  storm covers the district (``ctx.storm``).
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from gridwatch.contracts import RainReading, ReadingBatch
from gridwatch.influx import Point
from streams.agent import device_table, reading_agent
from streams.batch_state import fresh
from streams.influx_sink import reading_points
from streams.rain_scoring import RainScorer, StormCells
from streams.scored_job import apply_result
from streams.views import RainView

log = logging.getLogger(__name__)


def register(app: faust.App, ctx: Any, rain_view: RainView, every_s: float = 1.0) -> None:
    scorer = RainScorer()
    table = device_table(app, ctx, "rain-gauges")
    topic = ctx.readings(app, "rain")

    async def handle(batch: ReadingBatch) -> list[Point]:
        readings = [r for r in batch.readings if isinstance(r, RainReading)]
        stored = {d: table.get(d) for d in {r.device_id for r in readings}}
        scored = fresh(readings, stored)
        if not scored:
            return reading_points(readings)
        return await apply_result(ctx, table, readings, scored, scorer.score(scored, stored))

    app.agent(topic, name="rain", concurrency=1)(reading_agent(ctx, topic.get_topic_name(), handle))

    cells = StormCells(ctx.registry)
    last_written: list[int] = [0]

    @app.timer(every_s)
    async def storm_picture() -> None:
        now = rain_view.newest_ts
        if now is None:
            return
        picture = cells.picture(rain_view.states, now)
        ctx.storm = picture
        if picture.time_ms != last_written[0]:
            last_written[0] = picture.time_ms
            await ctx.sink.put(picture.points(ctx.registry))
