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
  storm covers the district (``ctx.storm``);
* storm mode (``streams.alerts.storm_step``: hysteresis and minimum durations in event
  time) is stepped at every minute of event time, with each gauge's rain as it stood
  then (``RainView.at``), up to ``STORM_SETTLE_S`` before the newest rain reading: a
  replay that covers an hour in seconds, or a worker catching up a backlog, steps
  through the same pictures as a live feed. A change is a ``storm_on`` / ``storm_off``
  alert on ``gw.alerts`` (incident ``storm:{district}``), which the ticketing job
  records as a storm period. Every worker steps the same minutes and sends the same
  alert ids, which the store keeps once, joining a storm's alerts into one period.
  A worker starts stepping once its rain view has caught up, from the start of the
  history the view replayed: a restarted worker goes through an ongoing storm (or one
  that ended while it was down) again and sends the alerts the store already holds.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from gridwatch.contracts import RainReading, ReadingBatch
from gridwatch.influx import Point
from streams.agent import device_table, reading_agent
from streams.alerts import StormState, storm_alert, storm_step
from streams.batch_state import fresh
from streams.influx_sink import alert_point, reading_points
from streams.rain_scoring import RainScorer, StormCells, StormPicture
from streams.scored_job import apply_result
from streams.views import RainView

log = logging.getLogger(__name__)

STORM_SETTLE_S = 120.0  # rain of other partitions may still arrive for this long
STORM_CATCH_UP_MIN = 360  # at most this many minutes stepped back (the view's 6 h)


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
    storms: dict[str, StormState] = {}
    # the next event-time minute (ms) to step; None: from the start of the view's history
    next_minute: list[int | None] = [None]

    async def step_minutes(newest_s: float) -> None:
        """Step storm mode at each minute since the last one stepped, up to the settle
        margin before the newest rain reading, each from the gauges as they stood then."""
        last = int((newest_s - STORM_SETTLE_S) // 60 * 60_000)
        t = max(next_minute[0] or 0, last - STORM_CATCH_UP_MIN * 60_000)
        while t <= last:
            now = t / 1000
            states = {g: s for g in cells.gauges if (s := rain_view.at(g, now)) is not None}
            await step_storms(cells.picture(states, now))
            t += 60_000
        next_minute[0] = t

    async def step_storms(picture: StormPicture) -> None:
        for district, share in picture.heavy_share.items():
            state, change = storm_step(
                storms.get(district, StormState()), district, share, picture.time_ms, cells.params
            )
            storms[district] = state
            if change is None:
                continue
            alert = storm_alert(change, cells.params)
            await ctx.alerts.send(
                key=alert.incident_key.encode(), value=alert.model_dump_json().encode()
            )
            await ctx.sink.put([alert_point(alert)])
            ctx.stats.alerts += 1
            log.info("storm mode district=%s on=%s alert=%s", district, change.on, alert.alert_id)

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
        if rain_view.ready.is_set():  # not while the view replays its history
            await step_minutes(now)
