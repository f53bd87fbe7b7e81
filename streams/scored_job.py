"""A scored feed job: per-device state in a table, a pure scorer, then sink and emit.

``register_scored(app, ctx, kind, score)`` wires one agent for ``gw.readings.{kind}``:
load the devices' states from the table, call ``score(readings, stored)`` (which returns
``states``, ``assessments`` and ``alerts``), store the states, emit assessments (those
with forecasts) and alerts, and hand readings, assessments and alerts to the sink, which
acks the event once they are in InfluxDB (``streams.agent``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import faust

from gridwatch.contracts import ReadingBase, ReadingBatch
from gridwatch.influx import Point
from streams.agent import device_table, reading_agent
from streams.batch_state import fresh, stamp
from streams.influx_sink import alert_point, assessment_point, reading_points

Scorer = Callable[[Sequence[Any], Mapping[str, Mapping[str, Any] | None]], Any]


async def apply_result(
    ctx: Any,
    table: Any,
    readings: Sequence[ReadingBase],
    scored: Sequence[ReadingBase],
    result: Any,
) -> list[Point]:
    """Store the new states, emit, and return every point of the batch: all
    ``readings`` (a replayed one overwrites itself) and what ``scored`` produced."""
    stamp(result.states, scored)
    for device, state in result.states.items():
        table[device] = state
    for assessment in result.assessments:
        if assessment.forecasts or "water_cover" in assessment.detail:
            await ctx.assessments.send(
                key=assessment.device_id.encode(), value=assessment.model_dump_json().encode()
            )
    for alert in result.alerts:
        await ctx.alerts.send(
            key=alert.incident_key.encode(), value=alert.model_dump_json().encode()
        )
    ctx.stats.alerts += len(result.alerts)
    points = reading_points(readings)
    points += [assessment_point(a) for a in result.assessments]
    points += [alert_point(a) for a in result.alerts]
    return points


def register_scored(app: faust.App, ctx: Any, kind: str, score: Scorer) -> None:
    table = device_table(app, ctx, f"{kind}-devices")
    topic = ctx.readings(app, kind)

    async def handle(batch: ReadingBatch) -> list[Point]:
        readings = [r for r in batch.readings if r.kind == kind]
        stored = {d: table.get(d) for d in {r.device_id for r in readings}}
        scored = fresh(readings, stored)
        if not scored:
            return reading_points(readings)
        return await apply_result(ctx, table, readings, scored, score(scored, stored))

    app.agent(topic, name=kind, concurrency=1)(reading_agent(ctx, topic.get_topic_name(), handle))
