"""Water job: per-site state in a table, scoring in ``streams.water_scoring``.

* rain: each gauge's rain state (5-minute bins of the last hour, intensity, storm start)
  is kept by every worker's ``RainView``, which reads all rain partitions, so every
  worker sees the gauge of every site (``streams.rain_job`` scores the gauges); a site
  is scored with its gauge's state as it stood at the site's reading (``RainView.at``),
  since the view may have read the rain far ahead of the water (a replay, a backlog);
* water: each site's QC, detector, depth and hygiene state lives in a table
  co-partitioned with ``gw.readings.water`` (the bridge sends a device's readings to
  one partition), recovered from its changelog after a restart.

The water agent parses once, calls the pure core, emits assessments and alerts and hands
readings, assessments and alerts to the sink, which acks the event once they are stored
(``streams.agent``). A timer reports sensors that went silent.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from gridwatch.contracts import Alert, ReadingBatch, WaterReading
from gridwatch.influx import Point
from gridwatch.kafka import partition_for
from models.flood_forecast import load_forecaster
from streams.agent import device_table, reading_agent
from streams.batch_state import field_of, fresh
from streams.health import (
    SILENT_FACTOR,
    back_alert,
    partition_time,
    silence_alert,
    silent_devices,
)
from streams.hygiene import HygieneState
from streams.influx_sink import alert_point, reading_points
from streams.scored_job import apply_result
from streams.status_scoring import battery_update
from streams.views import EvidenceView, RainView
from streams.water_scoring import WaterScorer

log = logging.getLogger(__name__)

SILENCE_CHECK_EVENT_S = 30.0


def register(app: faust.App, ctx: Any, rain_view: RainView, evidence: EvidenceView) -> None:
    forecaster, note = load_forecaster(ctx.settings.stack.var_dir / "models")
    log.warning("flood forecaster: %s", note)
    scorer = WaterScorer(ctx.registry, forecaster)
    site_table = device_table(app, ctx, "water-sites")
    water_topic = ctx.readings(app, "water")

    silent: dict[str, str] = {}  # device → "silent" | "dead", as this worker reported it
    # Newest reading time per partition (event time): a device is judged against its own
    # partition, so a partition that lags behind another never makes its devices look quiet.
    watermark: dict[int, float] = {}
    partitions = ctx.settings.kafka.partitions
    # device → (newest reading time, battery record), kept in memory from the readings
    # (loaded from the table once after a start) so a silence check costs no table scan
    seen: dict[str, tuple[float, Any]] = {}
    intervals = {p.device.device_id: p.device.interval_s for p in ctx.registry.devices_of("water")}
    checked = {"event_ts": float("-inf"), "loaded": False}

    def behind(r: WaterReading) -> bool:
        """A reading still stamped too far behind its partition's newest time: the
        device's clock lags, it is not back (clearing it would flap the ticket)."""
        lag = watermark[partition_for(r.device_id, partitions)] - r.ts.timestamp()
        return lag >= SILENT_FACTOR * intervals.get(r.device_id, 60.0)

    async def handle(batch: ReadingBatch) -> list[Point]:
        readings = [r for r in batch.readings if isinstance(r, WaterReading)]
        for r in readings:
            part = partition_for(r.device_id, partitions)
            watermark[part] = max(watermark.get(part, float("-inf")), r.ts.timestamp())
        for r in readings:
            if r.device_id in silent and not behind(r):
                del silent[r.device_id]
                await emit_alert(back_alert(ctx.registry.placement(r.device_id), r.ts))
        stored = {d: site_table.get(d) for d in {r.device_id for r in readings}}
        scored = fresh(readings, stored)
        if not scored:
            return reading_points(readings)
        # each site's gauge as it stood at the site's reading, not the view's newest state
        result = scorer.score(scored, stored, rain_view.at, evidence.latest)
        for r in scored:  # the battery record tells a dead sensor from a silent one
            state: dict[str, Any] = result.states[r.device_id]
            if "batt" not in state:
                state["batt"] = (stored.get(r.device_id) or {}).get("batt")
            state["batt"] = battery_update(state["batt"], r.ts.timestamp(), r.battery_v)
            seen[r.device_id] = (r.ts.timestamp(), state["batt"])
        points = await apply_result(ctx, site_table, readings, scored, result)
        # judge silence every half minute of event time too, not only on the wall-clock
        # timer: a replay at 600× covers an hour in six seconds
        newest = max(watermark.values(), default=float("-inf"))
        if newest - checked["event_ts"] >= SILENCE_CHECK_EVENT_S:
            await watch_silence()
        return points

    @app.timer(5.0)
    async def watch_silence_timer() -> None:
        await watch_silence()

    async def watch_silence() -> None:
        """Water sensors quiet for five intervals of event time → device_fault alerts
        (silent, then dead if they stay away or their battery ran down)."""
        if not checked["loaded"]:  # after a start: what the table knows of every site
            for device, state in list(site_table.items()):
                last = field_of(HygieneState, (state or {}).get("hyg"), "last_ts")
                if device not in seen and last == last:
                    seen[device] = (last, (state or {}).get("batt"))
            checked["loaded"] = True
        checked["event_ts"] = max(watermark.values(), default=float("-inf"))
        by_part: dict[int, list[tuple[str, float]]] = {}
        battery: dict[str, Any] = {}
        for device, (last, batt) in list(seen.items()):
            if silent.get(device) == "dead":
                continue
            by_part.setdefault(partition_for(device, partitions), []).append((device, last))
            battery[device] = batt
        for part, last_seen in by_part.items():
            if part not in watermark:
                continue
            mark = partition_time(last_seen, watermark[part])
            for device, quiet in silent_devices(last_seen, intervals, mark):
                await report_silence(device, mark, quiet, battery[device])

    async def report_silence(device: str, now: float, quiet: float, battery: Any) -> None:
        placement = ctx.registry.get(device)
        if placement is None:
            return
        gauge = rain_view.get(scorer.gauge_of.get(device) or "") or {}
        rain = float(gauge.get("intensity", 0.0))
        alert = silence_alert(placement, now - quiet, quiet, rain, battery)
        health = str(alert.evidence["health"])
        if silent.get(device) == health:
            return  # reported already; a silent device is reported again once dead
        silent[device] = health
        await emit_alert(alert)

    async def emit_alert(alert: Alert) -> None:
        """To the ticketing job, and to InfluxDB's ``alert`` measurement like every other
        alert (the devices dashboard counts silent and dead sensors there)."""
        await ctx.alerts.send(
            key=alert.incident_key.encode(), value=alert.model_dump_json().encode()
        )
        await ctx.sink.put([alert_point(alert)])
        ctx.stats.alerts += 1

    app.agent(water_topic, name="water", concurrency=1)(
        reading_agent(ctx, water_topic.get_topic_name(), handle)
    )
