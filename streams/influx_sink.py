"""Map contract records to InfluxDB points (DESIGN.md, InfluxDB).

Tags are bounded: device, grid, district, kind (and category/severity for alerts);
never a timestamp, message id or free text. Event time in ms.
"""

from __future__ import annotations

from collections.abc import Iterable

from gridwatch.contracts import (
    Alert,
    Assessment,
    BikeReading,
    CameraReading,
    RainReading,
    ReadingBase,
    StatusReading,
    TicketEvent,
    WaterReading,
)
from gridwatch.influx import FieldValue, Point


def _ms(reading: ReadingBase) -> int:
    return int(reading.ts.timestamp() * 1000)


def reading_point(reading: ReadingBase) -> Point:
    tags = {"device": reading.device_id, "grid": reading.grid_id, "district": reading.district_id}
    fields: dict[str, FieldValue] = {"qc": int(reading.qc)}
    if reading.seq is not None:
        fields["seq"] = reading.seq
    if isinstance(reading, WaterReading):
        fields["level_cm"] = float(reading.level_cm)
        _maybe(fields, "battery_v", reading.battery_v)
        _maybe(fields, "rssi_dbm", reading.rssi_dbm)
    elif isinstance(reading, RainReading):
        _maybe(fields, "rain_mm", reading.rain_mm)
        _maybe(fields, "intensity_mm_h", reading.intensity_mm_h)
    elif isinstance(reading, BikeReading):
        fields["bikes"] = reading.bikes
        fields["capacity"] = reading.capacity
        fields["occupancy"] = reading.bikes / reading.capacity
        for operator, count in reading.by_operator.items():
            fields[f"op_{operator}"] = count  # a field per operator (never a tag)
    elif isinstance(reading, CameraReading):
        for name, count in reading.counts.model_dump(exclude={"schema_version"}).items():
            fields[name] = int(count)
        _maybe(fields, "water_cover", reading.water_cover)
        fields["status"] = reading.status
    elif isinstance(reading, StatusReading):
        _maybe(fields, "battery_v", reading.battery_v)
        if reading.uptime_s is not None:
            fields["uptime_s"] = reading.uptime_s
        if reading.firmware is not None:
            fields["firmware"] = reading.firmware
    return Point(reading.kind, tags, fields, _ms(reading))


def reading_points(readings: Iterable[ReadingBase]) -> list[Point]:
    return [reading_point(r) for r in readings]


def _maybe(fields: dict[str, FieldValue], name: str, value: float | None) -> None:
    if value is not None:
        fields[name] = float(value)


def _threshold_key(threshold: str) -> str:
    """``"7.6"`` → ``"7_6"``, ``"15.0"`` → ``"15"`` (field-name safe)."""
    value = float(threshold)
    text = f"{value:g}"
    return text.replace(".", "_").replace("-", "m")


def assessment_point(a: Assessment) -> Point:
    """Measurement ``assessment``: one point per scored reading.

    Fields: ``value``, ``qc``, ``anomaly``, ``risk`` and, per forecast horizon ``H``
    minutes, ``fH_q10``, ``fH_q50``, ``fH_q90`` and ``fH_p<threshold>`` (e.g.
    ``f30_p15`` = P(depth > 15 cm in 30 min), ``f30_p7_6``), plus any ``detail`` figures
    prefixed ``d_``.
    """
    tags = {"device": a.device_id, "grid": a.grid_id, "district": a.district_id, "kind": a.kind}
    fields: dict[str, FieldValue] = {
        "qc": int(a.qc),
        "anomaly": float(a.anomaly_score),
        "risk": float(a.risk),
    }
    _maybe(fields, "value", a.value)
    for f in a.forecasts:
        prefix = f"f{f.horizon_min}"
        fields[f"{prefix}_q10"] = float(f.q10)
        fields[f"{prefix}_q50"] = float(f.q50)
        fields[f"{prefix}_q90"] = float(f.q90)
        for threshold, p in f.p_exceed.items():
            fields[f"{prefix}_p{_threshold_key(threshold)}"] = float(p)
    for name, value in a.detail.items():
        fields[f"d_{name}"] = float(value)
    return Point("assessment", tags, fields, int(a.ts.timestamp() * 1000))


def alert_point(alert: Alert) -> Point:
    """Measurement ``alert``: tags grid, district, category, severity, kind (forecast,
    observed, clear, recede, maintenance); fields probability, incident, site, why,
    alert_id, lead_min (minutes to ``expected_at``, forecasts only)."""
    tags = {
        "grid": alert.grid_id,
        "district": alert.district_id,
        "category": alert.category.value,
        "severity": alert.severity.value,
        "kind": alert.kind,
    }
    fields: dict[str, FieldValue] = {
        "probability": float(alert.probability),
        "incident": alert.incident_key,
        "alert_id": alert.alert_id,
        "why": alert.why,
    }
    if alert.site:
        fields["site"] = alert.site
    if alert.expected_at is not None:
        fields["lead_min"] = (alert.expected_at - alert.ts).total_seconds() / 60.0
    return Point("alert", tags, fields, int(alert.ts.timestamp() * 1000))


def ticket_point(event: TicketEvent) -> Point:
    """Measurement ``ticket``: one point per ticket event. Tags grid, category,
    severity, state, event; fields ticket_id, incident, actor, reason, value=1 (count)."""
    tags = {
        "grid": event.grid_id,
        "category": event.category.value,
        "severity": event.severity.value,
        "state": event.state,
        "event": event.event,
    }
    fields: dict[str, FieldValue] = {
        "ticket_id": event.ticket_id,
        "incident": event.incident_key,
        "actor": event.actor,
        "reason": event.reason,
        "value": 1,
    }
    return Point("ticket", tags, fields, int(event.ts.timestamp() * 1000))
