"""Building ``device_fault`` alerts: one shape for every job that finds a sick device."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gridwatch.contracts import Alert, AlertKind, Category, Severity, incident_key
from gridwatch.registry import Placement


def device_fault_alert(
    placement: Placement,
    *,
    ts: datetime,
    kind: AlertKind,
    tag: str,
    why: str,
    evidence: dict[str, Any],
    rule_version: str,
    severity: Severity = Severity.MINOR,
    id_ms: int | None = None,
) -> Alert:
    """A maintenance (or clear) alert on the device's own incident ``grid/device_fault/
    device``; the alert id is ``<incident>:<tag>:<ms>`` (``id_ms`` or ``ts``), so the
    same finding sent twice is one alert."""
    device = placement.device.device_id
    key = incident_key(placement.grid_id, Category.DEVICE_FAULT, device)
    ms = id_ms if id_ms is not None else int(ts.timestamp() * 1000)
    return Alert(
        alert_id=f"{key}:{tag}:{ms}",
        incident_key=key,
        kind=kind,
        category=Category.DEVICE_FAULT,
        severity=severity,
        grid_id=placement.grid_id,
        district_id=placement.district_id,
        site=device,
        ts=ts,
        lon=placement.device.lon,
        lat=placement.device.lat,
        why=why[:500],
        evidence={"device_ids": [device], **evidence},
        rule_version=rule_version,
    )
