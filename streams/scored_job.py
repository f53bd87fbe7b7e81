"""A scored feed job: per-device state in a table, a pure scorer, then sink and emit.

``register_scored(app, ctx, kind, score)`` wires one agent for ``gw.readings.{kind}``:
load the devices' states from the table, call ``score(readings, stored)`` (which returns
``states``, ``assessments`` and ``alerts``), store the states, emit assessments (those
with forecasts) and alerts, and hand readings, assessments and alerts to the sink, which
acks the event once they are in InfluxDB (``streams.agent``). A scorer whose state has
large parts that a reading touches only a slice of (a camera's hour-of-week baseline)
names those slices with ``slot_keys``: they live in a second table, ``{kind}-slots``, and
only the slices a batch touched are rewritten.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import faust

from gridwatch.contracts import ReadingBase, ReadingBatch
from gridwatch.influx import Point
from streams.agent import device_table, reading_agent
from streams.batch_state import fresh, stamp
from streams.influx_sink import alert_point, assessment_point, reading_points


class Emitter:
    """Which assessments go to ``gw.assessments``: a device's first, then whenever its
    value or risk moved enough to matter to a reader (the fusion of neighbouring flood
    sites, a camera's water cover), and at least every ``heartbeat_s`` of event time.
    Every assessment is stored in InfluxDB regardless; this only spares Kafka the
    thousands of unchanged ones per second (each send costs the worker more than
    scoring the reading). Worker-local: after a restart every device is sent again."""

    def __init__(self, heartbeat_s: float = 300.0, min_change: float = 0.5) -> None:
        self.heartbeat_s = heartbeat_s
        self.min_change = min_change
        self.last: dict[str, tuple[float, float, float]] = {}

    def due(self, a: Any) -> bool:
        value = a.detail.get("water_cover", a.value if a.value is not None else 0.0) * (
            100.0 if "water_cover" in a.detail else 1.0
        )
        ts = a.ts.timestamp()
        seen = self.last.get(a.device_id)
        if seen is not None:
            t0, v0, r0 = seen
            moved = abs(value - v0) >= max(self.min_change, 0.05 * abs(v0))
            if not (moved or abs(a.risk - r0) >= 0.05 or ts - t0 >= self.heartbeat_s):
                return False
        self.last[a.device_id] = (ts, value, a.risk)
        return True


Scorer = Callable[..., Any]
SlotKeys = Callable[[Sequence[Any]], set[str]]


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
        if ctx.emitter.due(assessment):
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


def register_scored(
    app: faust.App, ctx: Any, kind: str, score: Scorer, slot_keys: SlotKeys | None = None
) -> None:
    """``score(scored, stored)``, or with ``slot_keys`` ``score(scored, stored, slots)``
    whose result also carries the ``slots`` to store."""
    table = device_table(app, ctx, f"{kind}-devices")
    slots = device_table(app, ctx, f"{kind}-slots") if slot_keys else None
    topic = ctx.readings(app, kind)

    async def handle(batch: ReadingBatch) -> list[Point]:
        readings = [r for r in batch.readings if r.kind == kind]
        stored = {d: table.get(d) for d in {r.device_id for r in readings}}
        scored = fresh(readings, stored)
        if not scored:
            return reading_points(readings)
        if slots is None or slot_keys is None:
            result = score(scored, stored)
        else:
            result = score(scored, stored, {k: slots.get(k) for k in slot_keys(scored)})
            for key, value in result.slots.items():
                slots[key] = value
        return await apply_result(ctx, table, readings, scored, result)

    app.agent(topic, name=kind, concurrency=1)(reading_agent(ctx, topic.get_topic_name(), handle))
