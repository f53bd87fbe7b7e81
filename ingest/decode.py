"""Decode one MQTT message into contract records, or raise ``ContractError``.

The decoder is the only place where device bytes become records (STYLE.md: parse once
at the edge). It is pure apart from its bounded per-device guard state (duplicates,
rates), whose clock is the ``received_at`` the caller passes in.

Order of checks, cheapest and most trusted first:

0. a message the broker replayed from its retained store (``retained``): not live,
   whatever it holds (see ``ingest.bridge``);
1. topic ``{root}/{kind}/{device_id}``: kind known, device id matching the contract
   pattern before it is used anywhere (``topic_mismatch``);
2. payload size (``too_large``), before any parsing;
3. registry: unknown device (``unknown_device``); the topic kind must be the device's
   kind in the registry (``topic_mismatch``);
4. per-device token bucket (``rate_limited``), one token per message, and one more per
   extra reading once the message is decoded;
5. strict JSON (``malformed``, ``non_finite``, ``schema``), see ``ingest.strictjson``;
6. payload shape: a JSON array is a SenML pack (``ingest.senml``); on camera topics an
   object with ``Topic``/``NotificationMessage``/``Frame`` is ONVIF (``ingest.onvif``);
   any other object is our schema (``ingest.native``);
7. each reading's event time against the arrival time (``future_ts``, ``stale_ts``);
8. QARTOD gross-range flag (``ingest.quality``) and strict contract validation
   (``schema``);
9. duplicates and conflicts against the device's recent readings (``ingest.guards``,
   ``ingest.identity``): a reading at the same point (device, event time in ms) with the
   same values is a duplicate and is dropped (``duplicate`` when every reading of the
   message is one); with other values it is a conflict (``conflict``, naming the earlier
   values). ``decode_message`` returns the fresh readings of a message together with
   the conflict of its other readings, so the caller forwards the first and
   dead-letters the message for the second; ``decode`` returns the readings only.

A ``Decoder`` holds mutable guard state and is not thread-safe: use one per thread (or
call it from one thread), as the bridge does. Readings come back sorted by event time.
Nothing but ``ContractError`` escapes: an unexpected internal error is reported as
``malformed`` with its type in the detail (and counted in
``DecoderStats.internal_errors``) rather than taking the bridge down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from pydantic import ValidationError

from gridwatch.contracts import (
    DEVICE_ID_RE,
    KINDS,
    READING_TYPES,
    DeadLetterReason,
    Origin,
    QcFlag,
    ReadingBase,
)
from gridwatch.errors import ContractError
from gridwatch.registry import Registry
from ingest import strictjson
from ingest.guards import (
    DEFAULT_BURST,
    DEFAULT_MAX_DEVICES,
    DEFAULT_RATE_PER_S,
    DEFAULT_WINDOW,
    DeviceGuards,
    GuardStats,
)
from ingest.identity import content, content_size, describe_conflict, identity, point_ms, same
from ingest.native import Draft, object_draft
from ingest.onvif import is_onvif, onvif_drafts
from ingest.quality import qc_flag
from ingest.senml import pack_drafts
from ingest.timestamps import TimeWindow, from_ms, to_ms

MAX_PAYLOAD_BYTES = strictjson.MAX_PAYLOAD_BYTES
# Content of readings identified by seq alone: never compared (see ingest.guards).
_NO_CONTENT = {kind: bytes(content_size(kind)) for kind in KINDS}
_SAME = {kind: partial(same, kind) for kind in KINDS}


class Decoded(NamedTuple):
    """What one message yields: fresh readings (never empty), and the refusal of its
    other readings as conflicts, if any (to be dead-lettered with the message)."""

    readings: list[ReadingBase]
    conflict: ContractError | None


@dataclass
class DecoderStats:
    """Counters for the bridge's metrics (monotonic; read, never reset, by the bridge)."""

    messages: int = 0  # decode() calls
    accepted: int = 0  # messages that returned readings
    readings: int = 0  # readings returned
    rejected: dict[str, int] = field(default_factory=dict)  # reason → messages
    qc: dict[int, int] = field(default_factory=dict)  # QARTOD flag → readings returned
    internal_errors: int = 0  # bugs caught at the boundary (reported as malformed)
    guards: GuardStats = field(default_factory=GuardStats)

    @property
    def duplicates(self) -> int:
        return self.guards.duplicates

    def snapshot(self) -> dict[str, int]:
        """Flat ``name → count`` for a metrics point (e.g. InfluxDB ``pipeline`` fields)."""
        out = {
            "messages": self.messages,
            "accepted": self.accepted,
            "readings": self.readings,
            "internal_errors": self.internal_errors,
            "duplicates": self.guards.duplicates,
            "conflicts": self.guards.conflicts,
            "rate_limited": self.guards.rate_limited,
            "not_deduplicable": self.guards.not_deduplicable,
            "evicted_devices": self.guards.evicted_devices,
        }
        for reason, n in self.rejected.items():
            out[f"rejected_{reason}"] = n
        for flag, n in self.qc.items():
            out[f"qc_{flag}"] = n
        return out


class Decoder:
    def __init__(
        self,
        registry: Registry,
        *,
        topic_root: str = "gw/v1",
        max_future: timedelta = timedelta(minutes=5),
        max_age: timedelta = timedelta(days=7),
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_depth: int = strictjson.MAX_DEPTH,
        dedup_window: int = DEFAULT_WINDOW,
        max_devices: int = DEFAULT_MAX_DEVICES,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: float = DEFAULT_BURST,
    ) -> None:
        self.registry = registry
        self.topic_root = topic_root.rstrip("/")
        self._prefix = self.topic_root + "/"
        self.max_future = max_future
        self.max_age = max_age
        self.window = TimeWindow(max_future=max_future, max_age=max_age)
        self.max_payload_bytes = max_payload_bytes
        self.max_depth = max_depth
        self.guards = DeviceGuards(
            window=dedup_window, max_devices=max_devices, rate_per_s=rate_per_s, burst=burst
        )
        self.stats = DecoderStats(guards=self.guards.stats)
        self._origins: dict[str, Origin] = {}

    # -- public interface -------------------------------------------------------------

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> list[ReadingBase]:
        """Fresh readings of one message, sorted by time; ``ContractError`` otherwise.

        Readings refused as conflicts next to fresh ones are counted but not reported:
        callers that dead-letter (the bridge) use ``decode_message``.
        """
        return self.decode_message(topic, payload, received_at).readings

    def decode_message(
        self, topic: str, payload: bytes, received_at: datetime, *, retained: bool = False
    ) -> Decoded:
        """Fresh readings of one message and the conflict of its others, if any;
        ``ContractError`` when nothing in it is fresh. ``retained``: the broker replayed
        the message from its retained store (refused as ``retained``)."""
        self.stats.messages += 1
        try:
            if retained:
                raise ContractError(
                    DeadLetterReason.RETAINED,
                    "the broker replayed a retained message: a copy of an earlier "
                    "publish, not a live reading",
                )
            readings, conflict = self._decode(topic, payload, received_at)
        except ContractError as exc:
            reason = str(exc.reason)
            self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
            raise
        except Exception as exc:  # a bug must not take the bridge down: dead-letter it
            self.stats.internal_errors += 1
            self.stats.rejected["malformed"] = self.stats.rejected.get("malformed", 0) + 1
            raise ContractError(
                DeadLetterReason.MALFORMED, f"internal {type(exc).__name__}: {str(exc)[:150]}"
            ) from exc
        self.stats.accepted += 1
        self.stats.readings += len(readings)
        for r in readings:
            self.stats.qc[int(r.qc)] = self.stats.qc.get(int(r.qc), 0) + 1
        if conflict is not None:
            self.stats.rejected["conflict"] = self.stats.rejected.get("conflict", 0) + 1
        return Decoded(readings, conflict)

    def parse_topic(self, topic: str) -> tuple[str, str]:
        """``(kind, device_id)`` of ``{root}/{kind}/{device_id}``, validated."""
        parts = topic[len(self._prefix) :].split("/") if topic.startswith(self._prefix) else []
        if len(parts) != 2 or parts[0] not in KINDS or not DEVICE_ID_RE.match(parts[1]):
            raise ContractError(DeadLetterReason.TOPIC_MISMATCH, f"bad topic {topic[:120]!r}")
        if parts[1].endswith("\n"):  # "$" in the pattern also matches before a final newline
            raise ContractError(DeadLetterReason.TOPIC_MISMATCH, f"bad topic {topic[:120]!r}")
        return parts[0], parts[1]

    # -- steps ------------------------------------------------------------------------

    def _decode(
        self, topic: str, payload: bytes, received_at: datetime
    ) -> tuple[list[ReadingBase], ContractError | None]:
        if not isinstance(topic, str):
            raise ContractError(DeadLetterReason.TOPIC_MISMATCH, "topic is not text")
        kind, device_id = self.parse_topic(topic)
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise ContractError(DeadLetterReason.MALFORMED, "payload is not bytes")
        if len(payload) > self.max_payload_bytes:
            raise ContractError(
                DeadLetterReason.TOO_LARGE,
                f"{len(payload)} bytes exceeds the {self.max_payload_bytes}-byte limit",
            )
        if received_at.tzinfo is None or received_at.utcoffset() is None:
            raise ContractError(DeadLetterReason.SCHEMA, "received_at must be timezone-aware")
        placement = self.registry.get(device_id)
        if placement is None:
            raise ContractError(DeadLetterReason.UNKNOWN_DEVICE, f"unknown device {device_id}")
        if placement.device.kind != kind:
            raise ContractError(
                DeadLetterReason.TOPIC_MISMATCH,
                f"device {device_id} is a {placement.device.kind} device, topic says {kind}",
            )
        if not self.guards.admit(device_id, received_at):
            raise ContractError(
                DeadLetterReason.RATE_LIMITED,
                f"device {device_id} exceeds {self.guards.rate_per_s}/s "
                f"(burst {self.guards.burst:g})",
            )
        raw = bytes(payload)
        body = strictjson.loads(raw, max_bytes=self.max_payload_bytes, max_depth=self.max_depth)
        received_ms = to_ms(received_at)
        drafts = self._drafts(kind, device_id, body, received_ms)
        origin = self._origin(topic)
        readings: list[ReadingBase] = []
        absolute: list[bool] = []
        model = READING_TYPES[kind]
        for draft in drafts:
            self.window.check_ms(draft.ts_ms, received_ms)
            readings.append(
                self._validate(model, draft, kind, device_id, received_at, origin, placement)
            )
            absolute.append(draft.absolute)
        fresh, conflict = self._dedup(kind, device_id, readings, absolute)
        self.guards.charge(device_id, len(fresh) - 1)
        return fresh, conflict

    def _drafts(self, kind: str, device_id: str, body: Any, received_ms: float) -> list[Draft]:
        if isinstance(body, list):
            return pack_drafts(kind, device_id, body, received_ms)
        if not isinstance(body, dict):
            raise ContractError(
                DeadLetterReason.SCHEMA, "payload must be a JSON object or a SenML array"
            )
        if kind == "camera" and is_onvif(body):
            return onvif_drafts(body)
        return [object_draft(kind, device_id, body)]

    def _validate(
        self,
        model: type[ReadingBase],
        draft: Draft,
        kind: str,
        device_id: str,
        received_at: datetime,
        origin: Origin,
        placement: Any,
    ) -> ReadingBase:
        fields = draft.fields
        qc = qc_flag(kind, fields) if draft.measured else QcFlag.MISSING
        fields.update(
            device_id=device_id,
            ts=from_ms(draft.ts_ms),
            received_at=received_at,
            origin=origin,
            grid_id=placement.grid_id,
            district_id=placement.district_id,
            qc=qc,
        )
        try:
            return model.model_validate(fields)
        except ValidationError as exc:
            raise ContractError(DeadLetterReason.SCHEMA, _summarise(exc)) from exc

    def _dedup(
        self, kind: str, device_id: str, readings: list[ReadingBase], absolute: list[bool]
    ) -> tuple[list[ReadingBase], ContractError | None]:
        fresh: list[ReadingBase] = []
        conflicts: list[str] = []
        check, same_values = self.guards.check, _SAME[kind]
        for reading, is_absolute in zip(readings, absolute, strict=True):
            if is_absolute:
                packed = content(reading)
                key = identity(reading.seq, point_ms(reading))
                earlier = check(device_id, key, packed, same_values)
            else:
                packed = _NO_CONTENT[kind]
                earlier = check(device_id, identity(reading.seq, None), packed)
            if earlier is None:
                fresh.append(reading)
            elif earlier:  # b"" is a duplicate: dropped
                conflicts.append(
                    f"{reading.ts.isoformat()}: {describe_conflict(kind, packed, earlier)}"
                )
        conflict = None
        if conflicts:
            conflict = ContractError(
                DeadLetterReason.CONFLICT,
                f"{len(conflicts)} reading(s) of {device_id} conflict with readings ingested "
                f"earlier at the same time (not stored): " + "; ".join(conflicts),
            )
        if not fresh:
            if conflict is not None:
                raise conflict
            raise ContractError(
                DeadLetterReason.DUPLICATE,
                f"{len(readings)} reading(s) of {device_id} already seen (seq {readings[0].seq})",
            )
        return fresh, conflict

    def _origin(self, topic: str) -> Origin:
        origin = self._origins.get(topic)
        if origin is None:
            if len(self._origins) >= self.guards.max_devices * 2:
                self._origins.clear()  # bounded like the guards; rebuilt on demand
            origin = self._origins[topic] = Origin(transport="mqtt", topic=topic)
        return origin


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
        parts.append(f"{loc}: {err.get('msg', '')}")
    return "; ".join(parts)[:500]
