"""A short real storm through the real pipeline, for the dashboards' queries.

``run_storm`` runs the 50-year rainstorm scenario (shortened, with more device faults
than the catalogue's, so that silent and dead sensors, spikes and malformed payloads
happen within minutes) through MQTT → bridge → Kafka → Faust worker → InfluxDB and the
ticket store (``gridwatch.demo.run_demo``), then does what the tickets API does on a
timer — the SLA sweep — and drains the ticket outbox into InfluxDB as
``gridwatch tickets relay`` does. Every panel then reads what the stages wrote.

``supplement_points`` adds only what no stage writes in a simulated storm, each listed
in ``NOT_WRITTEN_YET`` with who should write it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gridwatch.contracts import CameraCounts, CameraReading, TicketEvent, WaterReading
from gridwatch.demo import DemoResult, run_demo
from gridwatch.influx import InfluxWriter, Point
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from ingest.quality import qc_flag
from simulators.scenario import load_scenario
from streams.influx_sink import reading_point
from tickets.db import make_engine, migrate, session_factory
from tickets.models import AuditRow, OutboxRow, Ticket
from tickets.outbox import OutboxRelay
from tickets.publishers import InfluxPublisher
from tickets.service import TicketService

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SCENARIO = "rainstorm-50y"
DURATION = "100min"
MAX_DEVICES = 250
# Higher than the catalogue's rates so every fault the panels show happens in 100 min.
FAULTS = {"dropout": 0.05, "battery_death": 0.03, "spike": 0.01, "malformed": 0.003}

# (measurement, field or tag) → who should write it. Only these come from
# ``supplement_points``; everything else on the dashboards comes from the pipeline.
NOT_WRITTEN_YET = {
    ("camera", "qc=9 (status offline)"): (
        "simulators: no camera ever reports status 'offline' (ingest flags it 9, "
        "streams store it); the QC panels' 缺失 series needs one"
    ),
    ("water", "qc=4 (outside the sensor's span)"): (
        "simulators: no water reading leaves the gauge's span (-5..300 cm, ingest's "
        "gross-range test flags it 4); the QC panels' 失败 series needs one"
    ),
}


@dataclass(frozen=True)
class Storm:
    settings: Settings
    result: DemoResult
    audit: list[dict[str, Any]]  # the store's audit rows: ticket_id, action, to_state, reason
    sweep: dict[str, int]
    # The ticket points InfluxDB holds after the relay wrote every outbox event: one per
    # event — what the ticket panels can read.
    ticket_points: list[dict[str, Any]]
    ticket_events: int  # outbox events written
    # every ticket in the store once the workers stopped (the demo's summary reads the
    # store before it stops them, so a late alert's ticket is only here)
    ticket_ids: frozenset[str]


def ticket_points(events: list[tuple[TicketEvent, dict[str, Any]]]) -> list[dict[str, Any]]:
    """InfluxDB's view of the relay's ``ticket`` writes (tickets/outbox.influx_line):
    one point per event (its time carries the outbox seq), tags grid, category,
    severity, state, event."""
    points = []
    for e, detail in events:
        point: dict[str, Any] = {
            "grid": e.grid_id,
            "category": e.category.value,
            "severity": e.severity.value,
            "state": e.state,
            "event": e.event,
            "ticket_id": e.ticket_id,
            "reason": e.reason,
        }
        if e.event == "complaint" and "pre_empted" in detail:
            point["pre_empted"] = 1 if detail["pre_empted"] else 0
            if isinstance(detail.get("lead_min"), int | float):
                point["lead_min"] = float(detail["lead_min"])
        points.append(point)
    return points


def run_storm(settings: Settings, out_dir: Path) -> Storm:
    scenario = load_scenario(SCENARIO).with_overrides(duration=DURATION, max_devices=MAX_DEVICES)
    scenario = scenario.model_copy(update={"faults": scenario.faults.model_copy(update=FAULTS)})
    result = run_demo(settings, scenario, manage_stack=False, out_dir=out_dir, timeout_s=300)
    registry = Registry.from_dir(settings.registry_dir)
    service = TicketService.from_url(settings.tickets.db_url, registry)
    sweep = service.sweep()  # as the tickets API's sweeper does every escalation_sweep_s
    engine = make_engine(settings.tickets.db_url)
    try:
        migrate(engine)
        asyncio.run(OutboxRelay(engine, InfluxPublisher(settings.influx)).drain())
        with session_factory(engine)() as s:
            events = []
            for row in s.scalars(select(OutboxRow).order_by(OutboxRow.id)):
                payload = dict(row.payload)
                detail = payload.pop("detail", None) or {}
                events.append((TicketEvent.model_validate_json(json.dumps(payload)), detail))
            ticket_ids = frozenset(s.scalars(select(Ticket.id)))
            audit = [
                {
                    "ticket_id": a.ticket_id,
                    "action": a.action,
                    "to_state": a.to_state,
                    "reason": a.reason,
                }
                for a in s.scalars(select(AuditRow))
            ]
    finally:
        engine.dispose()
    return Storm(settings, result, audit, sweep, ticket_points(events), len(events), ticket_ids)


def supplement_points(registry: Registry, end: datetime) -> list[Point]:
    """What no stage writes in a simulated storm (``NOT_WRITTEN_YET``): two cameras
    reporting ``offline`` and one water gauge reading -10 cm (below its span) for the
    last ten minutes, flagged by the real ingest QC."""
    cameras = sorted(p.device.device_id for p in registry.devices_of("camera"))[:2]
    gauge = registry.placement(sorted(p.device.device_id for p in registry.devices_of("water"))[0])
    points = []
    for minute in range(10):
        ts = end - timedelta(minutes=minute + 1)
        water = WaterReading(
            device_id=gauge.device.device_id,
            ts=ts,
            received_at=ts,
            grid_id=gauge.grid_id,
            district_id=gauge.district_id,
            level_cm=-10.0,
            qc=qc_flag("water", {"level_cm": -10.0}),
        )
        points.append(reading_point(water))
    for device in cameras:
        placement = registry.placement(device)
        for minute in range(10):
            ts = end - timedelta(minutes=minute + 1)
            fields = {"counts": {}, "status": "offline"}
            reading = CameraReading(
                device_id=device,
                ts=ts,
                received_at=ts,
                grid_id=placement.grid_id,
                district_id=placement.district_id,
                counts=CameraCounts(),
                status="offline",
                qc=qc_flag("camera", fields),
            )
            points.append(reading_point(reading))
    return points


async def write_supplement(settings: Settings, registry: Registry) -> int:
    writer = InfluxWriter(settings.influx)
    try:
        return await writer.write(supplement_points(registry, datetime.now(UTC)))
    finally:
        await writer.close()
