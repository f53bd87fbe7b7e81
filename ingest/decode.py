"""Decode one MQTT message into contract records, or raise ``ContractError``.

The decoder is the only place where device bytes become records (STYLE.md: parse once
at the edge). It is pure apart from its per-device guard state (duplicates, rates).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from gridwatch.contracts import (
    DEVICE_ID_RE,
    KINDS,
    READING_TYPES,
    DeadLetterReason,
    Origin,
    ReadingBase,
)
from gridwatch.errors import ContractError
from gridwatch.registry import Registry

MAX_PAYLOAD_BYTES = 16 * 1024


class Decoder:
    def __init__(
        self,
        registry: Registry,
        *,
        topic_root: str = "gw/v1",
        max_future: timedelta = timedelta(minutes=5),
        max_age: timedelta = timedelta(days=7),
    ) -> None:
        self.registry = registry
        self.topic_root = topic_root.rstrip("/")
        self.max_future = max_future
        self.max_age = max_age

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list[ReadingBase]:
        kind, device_id = self.parse_topic(topic)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ContractError(DeadLetterReason.TOO_LARGE, f"{len(payload)} bytes")
        placement = self.registry.get(device_id)
        if placement is None:
            raise ContractError(DeadLetterReason.UNKNOWN_DEVICE, device_id)
        if placement.device.kind != kind:
            raise ContractError(
                DeadLetterReason.TOPIC_MISMATCH,
                f"device {device_id} is a {placement.device.kind} device, topic says {kind}",
            )
        try:
            body = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ContractError(DeadLetterReason.MALFORMED, str(exc)[:200]) from exc
        if not isinstance(body, dict):
            raise ContractError(DeadLetterReason.SCHEMA, "payload must be a JSON object")
        ts = _parse_ts(body.pop("ts", None))
        if ts > received_at + self.max_future:
            raise ContractError(DeadLetterReason.FUTURE_TS, ts.isoformat())
        if ts < received_at - self.max_age:
            raise ContractError(DeadLetterReason.STALE_TS, ts.isoformat())
        fields: dict[str, Any] = {
            **body,
            "device_id": device_id,
            "ts": ts,
            "received_at": received_at,
            "origin": Origin(transport="mqtt", topic=topic),
            "grid_id": placement.grid_id,
            "district_id": placement.district_id,
        }
        try:
            return [READING_TYPES[kind].model_validate(fields)]
        except ValidationError as exc:
            raise ContractError(DeadLetterReason.SCHEMA, str(exc.errors()[0]["msg"])) from exc

    def parse_topic(self, topic: str) -> tuple[str, str]:
        prefix = self.topic_root + "/"
        parts = topic[len(prefix) :].split("/") if topic.startswith(prefix) else []
        if len(parts) != 2 or parts[0] not in KINDS or not DEVICE_ID_RE.match(parts[1]):
            raise ContractError(DeadLetterReason.TOPIC_MISMATCH, f"bad topic {topic[:120]!r}")
        return parts[0], parts[1]


def _reject_constant(name: str) -> float:
    raise ContractError(DeadLetterReason.NON_FINITE, name)


def _parse_ts(value: Any) -> datetime:
    if isinstance(value, bool) or value is None:
        raise ContractError(DeadLetterReason.SCHEMA, "ts missing or not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ContractError(DeadLetterReason.NON_FINITE, "ts")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ContractError(DeadLetterReason.SCHEMA, f"ts: {exc}") from exc
        if parsed.tzinfo is None:
            raise ContractError(DeadLetterReason.SCHEMA, "ts needs a UTC offset")
        return parsed.astimezone(UTC)
    raise ContractError(DeadLetterReason.SCHEMA, "ts must be RFC 3339 or epoch ms")
