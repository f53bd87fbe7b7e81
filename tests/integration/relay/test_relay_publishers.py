"""The outbox relay publishes ticket events to the real Kafka and InfluxDB, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gridwatch.contracts import Alert, Category, Severity, TicketEvent, incident_key, parse_record
from gridwatch.kafka import read_topic
from gridwatch.registry import Registry
from gridwatch.settings import Settings
from tests.integration.pipeline import influx_rows
from tickets.db import make_engine
from tickets.outbox import FanoutPublisher, OutboxRelay
from tickets.publishers import InfluxPublisher, KafkaPublisher
from tickets.service import TicketService

pytestmark = [pytest.mark.integration]


def test_relay_publishes_every_change_once(
    settings: Settings, registry: Registry, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/tickets.db"
    service = TicketService.from_url(url, registry)
    site = registry.devices_of("water")[0]
    key = incident_key(site.grid_id, Category.WATERLOGGING, site.device.site)
    t0 = datetime.now(UTC) - timedelta(hours=1)
    for i, kind in enumerate(("forecast", "observed", "clear")):
        service.raise_alert(
            Alert(
                alert_id=f"a-{i}",
                incident_key=key,
                kind=kind,  # type: ignore[arg-type]
                category=Category.WATERLOGGING,
                severity=Severity.MAJOR,
                grid_id=site.grid_id,
                district_id=site.district_id,
                site=site.device.site,
                ts=t0 + timedelta(minutes=10 * i),
                probability=0.8,
            )
        )
    kafka, influx = KafkaPublisher(settings.kafka), InfluxPublisher(settings.influx)
    relay = OutboxRelay(make_engine(url), FanoutPublisher(kafka, influx))

    async def drain_twice() -> tuple[int, int]:
        first = await relay.drain()
        second = await relay.drain()
        await kafka.close()
        await influx.close()
        return first, second

    first, second = asyncio.run(drain_twice())
    assert first >= 3
    assert second == 0
    records = asyncio.run(read_topic(settings.kafka, settings.kafka.topic("tickets")))
    events = [parse_record(TicketEvent, r.value) for r in records]
    assert len(events) == first
    assert {e.incident_key for e in events} == {key}
    assert [e.state for e in events][-1] == "auto_resolved"
    points = influx_rows(settings, "SELECT ticket_id, state FROM ticket")
    assert len(points) == first
