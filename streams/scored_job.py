"""A scored feed job: per-device state in a table, a pure scorer, then sink and emit.

``register_scored(app, ctx, kind, score)`` wires one agent for ``gw.readings.{kind}``:
parse the batch once, load the devices' states from the table, call
``score(readings, stored)`` (which returns ``states``, ``assessments`` and ``alerts``),
store the states, write readings, assessments and alerts to InfluxDB, and emit
assessments (the newest per device) and alerts — all before the event is acked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import faust

from gridwatch.contracts import DeadLetterReason, ReadingBase, ReadingBatch, parse_record
from gridwatch.errors import ContractError, GridWatchError
from streams.influx_sink import alert_point, assessment_point, reading_points
from streams.sink import dead_letter, store_points

log = logging.getLogger(__name__)

Scorer = Callable[[Sequence[Any], Mapping[str, Mapping[str, Any] | None]], Any]


async def apply_result(ctx: Any, table: Any, readings: Sequence[ReadingBase], result: Any) -> None:
    for device, state in result.states.items():
        table[device] = state
    points = reading_points(readings)
    points += [assessment_point(a) for a in result.assessments]
    points += [alert_point(a) for a in result.alerts]
    await store_points(ctx, points)
    for assessment in result.assessments:
        if assessment.forecasts:
            await ctx.assessments.send(
                key=assessment.device_id.encode(), value=assessment.model_dump_json().encode()
            )
    for alert in result.alerts:
        await ctx.alerts.send(
            key=alert.incident_key.encode(), value=alert.model_dump_json().encode()
        )
    ctx.stats.readings += len(readings)
    ctx.stats.alerts += len(result.alerts)


def register_scored(app: faust.App, ctx: Any, kind: str, score: Scorer) -> None:
    table = app.Table(
        f"{kind}-devices", default=None, value_type=dict, partitions=ctx.settings.kafka.partitions
    )
    topic = ctx.readings(app, kind)
    name = topic.get_topic_name()

    async def agent(stream: faust.StreamT[bytes]) -> None:
        async for raw in stream:
            try:
                batch = parse_record(ReadingBatch, raw)
                readings = [r for r in batch.readings if r.kind == kind]
                stored = {d: table.get(d) for d in {r.device_id for r in readings}}
                await apply_result(ctx, table, readings, score(readings, stored))
            except ContractError as exc:
                await dead_letter(ctx, raw, name, DeadLetterReason(exc.reason), exc.detail)
            except (GridWatchError, ValueError, KeyError) as exc:
                log.exception("%s batch failed", kind)
                await dead_letter(ctx, raw, name, DeadLetterReason.PROCESSING, repr(exc))

    app.agent(topic, name=kind, concurrency=1)(agent)
