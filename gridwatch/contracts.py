"""Message contracts shared by every stage (see DESIGN.md, Contracts).

Every record is a strict, frozen pydantic v2 model: no coercion of strings to numbers,
no NaN or infinity, UTC-aware times, unknown fields rejected, and a ``schema_version``.
``ingest/`` builds them from device payloads; every later stage reads them back from
Kafka with ``model_validate_json`` (``parse_record`` wraps that in our own error).
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from gridwatch.errors import ContractError

SCHEMA_VERSION = 1

KINDS: tuple[str, ...] = ("water", "rain", "bike", "camera", "status")
Kind = Literal["water", "rain", "bike", "camera", "status"]

DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)
GRID_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_PATTERN)]
GridId = Annotated[str, StringConstraints(pattern=GRID_ID_PATTERN)]


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset")
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00+01:00
        raise ValueError("timestamp out of range once converted to UTC") from exc


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]

_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")


def _from_base64(value: Any, info: ValidationInfo) -> Any:
    """JSON bytes: standard base64 (RFC 4648 §4), or the URL-safe alphabet (§5) that
    records written before 2026-12-07 carry (pydantic's own ``base64`` encoding)."""
    if info.mode != "json" or not isinstance(value, str):
        return value
    try:
        return base64.b64decode(value.translate(_URLSAFE_TO_STANDARD), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from exc


def _to_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


# bytes in JSON as standard base64 ("+/", padded), which every tool decodes
Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    PlainSerializer(
        lambda b: base64.b64encode(b).decode("ascii"), return_type=str, when_used="json"
    ),
]


class QcFlag(IntEnum):
    """QARTOD quality flags."""

    PASS = 1
    NOT_EVALUATED = 2
    SUSPECT = 3
    FAIL = 4
    MISSING = 9


class DeadLetterReason(StrEnum):
    MALFORMED = "malformed"
    SCHEMA = "schema"
    UNKNOWN_DEVICE = "unknown_device"
    TOPIC_MISMATCH = "topic_mismatch"
    TOO_LARGE = "too_large"
    FUTURE_TS = "future_ts"
    STALE_TS = "stale_ts"
    NON_FINITE = "non_finite"
    RATE_LIMITED = "rate_limited"
    DUPLICATE = "duplicate"
    # Same device and event time (to the ms, InfluxDB's point identity) as a reading
    # ingested earlier, with different values: storing it would overwrite that reading.
    CONFLICT = "conflict"
    # An MQTT message the broker replayed from its retained store (retain flag set on
    # delivery): a copy of a past publish, not a live reading (ingest/bridge.py).
    RETAINED = "retained"
    PROCESSING = "processing"  # a stream job could not handle a valid-looking record
    SINK_REJECTED = "sink_rejected"  # InfluxDB refused a point for its content (400)


class Category(StrEnum):
    WATERLOGGING = "waterlogging"
    BIKE_OVERFLOW = "bike_overflow"
    STREET_VENDOR = "street_vendor"
    EXPOSED_GARBAGE = "exposed_garbage"
    ROAD_OCCUPATION = "road_occupation"
    CROWDING = "crowding"
    DEVICE_FAULT = "device_fault"


class Severity(StrEnum):
    INFO = "info"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class Record(BaseModel):
    """Base of every message: strict, immutable, versioned."""

    model_config = ConfigDict(
        strict=True,
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        ser_json_bytes="base64",
        val_json_bytes="base64",
    )

    schema_version: Literal[1] = 1


NonNegFloat = Annotated[float, Field(ge=0)]
NonNegInt = Annotated[int, Field(ge=0)]


class Origin(Record):
    """Where a reading came from: the transport and the address it arrived on."""

    transport: Literal["mqtt", "replay", "sim", "http"] = "mqtt"
    topic: str = Field("", max_length=256)


class ReadingBase(Record):
    kind: Kind
    device_id: DeviceId
    ts: UtcDatetime
    received_at: UtcDatetime
    origin: Origin = Origin()
    grid_id: GridId
    district_id: GridId
    seq: NonNegInt | None = None
    qc: QcFlag = QcFlag.NOT_EVALUATED


class WaterReading(ReadingBase):
    kind: Literal["water"] = "water"
    level_cm: float
    battery_v: float | None = None
    rssi_dbm: float | None = None


class RainReading(ReadingBase):
    kind: Literal["rain"] = "rain"
    rain_mm: NonNegFloat | None = None
    intensity_mm_h: NonNegFloat | None = None

    @model_validator(mode="after")
    def _one_measure(self) -> RainReading:
        if self.rain_mm is None and self.intensity_mm_h is None:
            raise ValueError("a rain reading needs rain_mm or intensity_mm_h")
        return self


class BikeReading(ReadingBase):
    kind: Literal["bike"] = "bike"
    bikes: NonNegInt
    capacity: Annotated[int, Field(ge=1)]
    by_operator: dict[Annotated[str, StringConstraints(max_length=32)], NonNegInt] = Field(
        default_factory=dict, max_length=16
    )


CAMERA_CLASSES: tuple[str, ...] = (
    "person",
    "vehicle",
    "bike",
    "vendor",
    "garbage",
    "road_occupation",
)


class CameraCounts(Record):
    person: NonNegInt = 0
    vehicle: NonNegInt = 0
    bike: NonNegInt = 0
    vendor: NonNegInt = 0
    garbage: NonNegInt = 0
    road_occupation: NonNegInt = 0


class CameraReading(ReadingBase):
    kind: Literal["camera"] = "camera"
    counts: CameraCounts
    water_cover: Annotated[float, Field(ge=0, le=1)] | None = None
    status: Literal["ok", "degraded", "obstructed", "offline"] = "ok"


class StatusReading(ReadingBase):
    kind: Literal["status"] = "status"
    battery_v: float | None = None
    uptime_s: NonNegInt | None = None
    firmware: Annotated[str, StringConstraints(max_length=64)] | None = None


Reading = Annotated[
    WaterReading | RainReading | BikeReading | CameraReading | StatusReading,
    Field(discriminator="kind"),
]

READING_TYPES: dict[str, type[ReadingBase]] = {
    "water": WaterReading,
    "rain": RainReading,
    "bike": BikeReading,
    "camera": CameraReading,
    "status": StatusReading,
}


class ReadingBatch(Record):
    """Readings of one kind whose devices share one Kafka partition.

    The bridge packs readings into batches so Faust's per-record cost is paid once per
    batch, not once per reading (DESIGN.md, Performance shape).
    """

    kind: Kind
    readings: list[Reading] = Field(min_length=1)
    packed_at: UtcDatetime

    @model_validator(mode="after")
    def _one_kind(self) -> ReadingBatch:
        if any(r.kind != self.kind for r in self.readings):
            raise ValueError(f"batch of kind {self.kind!r} holds readings of another kind")
        return self


class DeadLetter(Record):
    reason: DeadLetterReason
    detail: str = Field(max_length=2000)
    topic: str = Field(max_length=1024)
    raw: Base64Bytes = Field(max_length=70_000)  # standard base64 in JSON
    received_at: UtcDatetime
    device_id: str | None = Field(None, max_length=256)
    stage: Literal["ingest", "streams", "tickets"] = "ingest"


class Forecast(Record):
    """Forecast of one quantity at one horizon, with quantiles and exceedances."""

    horizon_min: Annotated[int, Field(ge=1, le=24 * 60)]
    q10: float
    q50: float
    q90: float
    # threshold (as text, e.g. "15.0") → probability of exceeding it
    p_exceed: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)


class Assessment(Record):
    device_id: DeviceId
    kind: Kind
    ts: UtcDatetime
    grid_id: GridId
    district_id: GridId
    value: float | None = None
    qc: QcFlag = QcFlag.NOT_EVALUATED
    anomaly_score: Annotated[float, Field(ge=0, le=1)] = 0.0
    forecasts: list[Forecast] = Field(default_factory=list, max_length=16)
    risk: Annotated[float, Field(ge=0, le=1)] = 0.0
    model_version: str = Field("", max_length=64)
    detail: dict[str, float] = Field(default_factory=dict, max_length=32)


AlertKind = Literal[
    "forecast", "observed", "clear", "recede", "maintenance", "storm_on", "storm_off"
]
# Storm mode of a district turning on or off (streams/rain_job.py): a district-wide
# state recorded as a storm period by the ticket store, never a ticket. Its incident
# key is ``storm:{district}`` and its grid is the district itself.
STORM_KINDS: frozenset[str] = frozenset({"storm_on", "storm_off"})


class Alert(Record):
    alert_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    incident_key: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    kind: AlertKind
    category: Category
    severity: Severity
    grid_id: GridId
    district_id: GridId
    site: str | None = Field(None, max_length=64)
    ts: UtcDatetime
    probability: Annotated[float, Field(ge=0, le=1)] = 1.0
    expected_at: UtcDatetime | None = None
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    why: str = Field("", max_length=500)
    evidence: dict[str, Any] = Field(default_factory=dict)
    rule_version: str = Field("", max_length=64)

    @model_validator(mode="after")
    def _storm_is_district_wide(self) -> Alert:
        if self.kind in STORM_KINDS:
            if self.grid_id != self.district_id:
                raise ValueError("a storm alert's grid_id is its district_id")
            if self.incident_key != storm_key(self.district_id):
                raise ValueError(f"a storm alert's incident key is {storm_key(self.district_id)!r}")
        return self


def storm_key(district_id: str) -> str:
    """``storm:{district}`` — the incident key of a district's storm mode alerts."""
    return f"storm:{district_id}"


def incident_key(grid_id: str, category: Category | str, site: str | None = None) -> str:
    """``{grid}:{category}[:{site}]`` — one incident, one partition, one active ticket."""
    base = f"{grid_id}:{Category(category).value}"
    return f"{base}:{site}" if site else base


TicketState = Literal[
    "pre_alert",
    "open",
    "acknowledged",
    "dispatched",
    "resolved",
    "auto_resolved",
    "retracted",
    "false_alarm",
]


class TicketEvent(Record):
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    ticket_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    incident_key: str = Field(max_length=200)
    event: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    state: TicketState
    category: Category
    severity: Severity
    grid_id: GridId
    ts: UtcDatetime
    actor: str = Field("system", max_length=64)
    reason: str = Field("", max_length=500)


class Complaint(Record):
    complaint_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    ts: UtcDatetime
    category: Category
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    grid_id: GridId | None = None
    description: str = Field("", max_length=2000)
    source: Literal["hotline", "open311", "app", "sim"] = "hotline"


R = TypeVar("R", bound=BaseModel)


def parse_record(model: type[R], raw: bytes | str) -> R:
    """Parse one record from JSON, raising only ``ContractError``."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        invalid_json = bool(errors) and errors[0]["type"] == "json_invalid"
        reason = DeadLetterReason.MALFORMED if invalid_json else DeadLetterReason.SCHEMA
        raise ContractError(reason.value, _summarise(exc)) from exc
    except (ValueError, TypeError, RecursionError) as exc:
        raise ContractError(DeadLetterReason.MALFORMED.value, str(exc)[:200]) from exc


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
        parts.append(f"{loc}: {err.get('msg', '')}")
    return "; ".join(parts)[:500]
