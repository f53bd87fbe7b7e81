"""Our own JSON object payload (DESIGN.md, Contracts → MQTT) mapped to a draft reading.

A payload is one JSON object: ``ts`` (RFC 3339 or epoch ms, required), ``seq``
(optional), the fields of its kind with units in their names, and optionally
``device_id``/``kind`` which must then agree with the topic. Anything else is a schema
error: devices cannot set ``qc``, ``grid_id``, ``received_at`` or ``origin``.

Type strictness (no numbers as strings, no booleans as numbers) is left to the strict
contract models, which the decoder validates every draft against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gridwatch.contracts import DeadLetterReason
from gridwatch.errors import ContractError
from ingest.timestamps import event_ms

PAYLOAD_FIELDS: dict[str, frozenset[str]] = {
    "water": frozenset({"level_cm", "battery_v", "rssi_dbm"}),
    "rain": frozenset({"rain_mm", "intensity_mm_h"}),
    "bike": frozenset({"bikes", "capacity", "by_operator"}),
    "camera": frozenset({"counts", "water_cover", "status"}),
    "status": frozenset({"battery_v", "uptime_s", "firmware"}),
}
_ENVELOPE = frozenset({"ts", "seq", "device_id", "kind"})


@dataclass
class Draft:
    """One reading before validation: its event time and its contract fields.

    ``absolute`` says the time came from the payload (not derived from the arrival
    time); ``measured`` is False when a camera message carried no counts at all (the
    zero counts are placeholders, so the reading is flagged MISSING).
    """

    ts_ms: float
    fields: dict[str, Any] = field(default_factory=dict)
    absolute: bool = True
    measured: bool = True


def check_identity(kind: str, device_id: str, body: dict[str, Any]) -> None:
    """Optional ``device_id``/``kind`` in a payload must agree with the topic."""
    claimed = body.get("device_id", device_id)
    if claimed != device_id:
        raise ContractError(
            DeadLetterReason.TOPIC_MISMATCH,
            f"payload device_id {str(claimed)[:70]!r} differs from topic device {device_id}",
        )
    claimed_kind = body.get("kind", kind)
    if claimed_kind != kind:
        raise ContractError(
            DeadLetterReason.TOPIC_MISMATCH,
            f"payload kind {str(claimed_kind)[:20]!r} differs from topic kind {kind}",
        )


def object_draft(kind: str, device_id: str, body: dict[str, Any]) -> Draft:
    """Map our JSON object to a draft; raise ``ContractError`` on unknown fields."""
    allowed = PAYLOAD_FIELDS[kind]
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key in allowed:
            fields[key] = value
        elif key not in _ENVELOPE:
            raise ContractError(DeadLetterReason.SCHEMA, f"unknown field {key[:40]!r} for {kind}")
    check_identity(kind, device_id, body)
    if "seq" in body:
        fields["seq"] = body["seq"]
    ts_ms = event_ms(body.get("ts"))
    return Draft(ts_ms=ts_ms, fields=fields)
