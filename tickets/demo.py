"""Demo data for the console: a few incidents at every stage, raised through the service."""

from __future__ import annotations

from datetime import datetime, timedelta

from gridwatch.contracts import Alert, AlertKind, Category, Complaint, Severity, incident_key
from gridwatch.registry import Registry
from tickets.service import TicketService

KIND_CATEGORY = {"water": Category.WATERLOGGING, "bike": Category.BIKE_OVERFLOW}


def seed_demo(service: TicketService, registry: Registry, now: datetime) -> int:
    """Raise demo incidents around ``now``; return how many alerts were raised."""
    placements = [p for p in registry.devices.values() if p.device.kind in KIND_CATEGORY][:12]
    n = 0
    for i, p in enumerate(placements):
        cat = KIND_CATEGORY[p.device.kind]
        site = p.device.site or p.device.device_id
        key = incident_key(p.grid_id, cat, site)
        t0 = now - timedelta(minutes=40 - i * 3)
        kind: AlertKind = "forecast" if i % 3 == 0 else "observed"
        readings = [
            {"ts": (t0 - timedelta(minutes=10 - m)).isoformat(), "value": round(m * 1.4 + i, 1)}
            for m in range(11)
        ]
        alert = Alert(
            alert_id=f"demo-{i}",
            incident_key=key,
            kind=kind,
            category=cat,
            severity=(Severity.MINOR, Severity.MAJOR, Severity.CRITICAL)[i % 3],
            grid_id=p.grid_id,
            district_id=p.district_id,
            site=site,
            ts=t0,
            probability=0.7 if kind == "forecast" else 1.0,
            expected_at=t0 + timedelta(minutes=30) if kind == "forecast" else None,
            lon=p.device.lon,
            lat=p.device.lat,
            why=f"demo: {p.device.device_id} rising",
            evidence={"device_id": p.device.device_id, "readings": readings},
            rule_version="demo-1",
        )
        out = service.raise_alert(alert)
        n += 1
        if i % 4 == 1 and out.ticket_id and out.state == "open":
            service.acknowledge(out.ticket_id, "demo-operator", "on it")
        if i % 5 == 2:
            service.file_complaint(
                Complaint(
                    complaint_id=f"demo-c{i}",
                    ts=t0 + timedelta(minutes=12),
                    category=cat,
                    lon=p.device.lon,
                    lat=p.device.lat,
                    description="居民来电 resident call",
                    source="sim",
                )
            )
    return n
