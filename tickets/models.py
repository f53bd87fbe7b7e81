"""SQLAlchemy 2 models of the ticket store.

The schema itself is owned by the Alembic migrations in ``tickets/migrations``; these
classes must match them (``tests/integration/tickets/test_store.py`` checks that
``alembic check`` finds no drift).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from tickets.rules import ACTIVE_STATES

ACTIVE_SQL = "state IN (" + ", ".join(f"'{s}'" for s in sorted(ACTIVE_STATES)) + ")"

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # SQLAlchemy reads this class attribute as is.
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON}  # noqa: RUF012


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    incident_key: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))  # proactive | complaint | maintenance
    grid_id: Mapped[str] = mapped_column(String(64))
    district_id: Mapped[str] = mapped_column(String(64))
    micro_grid_id: Mapped[str | None] = mapped_column(String(64))
    site: Mapped[str | None] = mapped_column(String(64))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    why: Mapped[str] = mapped_column(String(500), default="")
    probability: Mapped[float | None] = mapped_column(Float)
    expected_at: Mapped[datetime | None]
    created_at: Mapped[datetime]  # first raised (pre-alert or open)
    opened_at: Mapped[datetime | None]  # became open
    acknowledged_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    ack_due: Mapped[datetime | None]
    resolve_due: Mapped[datetime | None]
    ack_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolve_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_stage: Mapped[int] = mapped_column(Integer, default=0)
    last_reminder_at: Mapped[datetime | None]
    assignee: Mapped[str] = mapped_column(String(64))
    agency: Mapped[str] = mapped_column(String(64))
    closing_code: Mapped[str | None] = mapped_column(String(16))
    rule_version: Mapped[str] = mapped_column(String(64), default="")
    model_version: Mapped[str] = mapped_column(String(64), default="")
    evidence_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "uq_tickets_active_incident",
            "incident_key",
            unique=True,
            sqlite_where=text(ACTIVE_SQL),
            postgresql_where=text(ACTIVE_SQL),
        ),
        Index("ix_tickets_state_grid", "state", "grid_id"),
        Index("ix_tickets_created_at", "created_at"),
        Index("ix_tickets_incident_key", "incident_key"),
    )


class Evidence(Base):
    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    alert_id: Mapped[str | None] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    ts: Mapped[datetime]
    severity: Mapped[str] = mapped_column(String(16))
    probability: Mapped[float | None] = mapped_column(Float)
    expected_at: Mapped[datetime | None]
    why: Mapped[str] = mapped_column(String(500), default="")
    rule_version: Mapped[str] = mapped_column(String(64), default="")
    model_version: Mapped[str] = mapped_column(String(64), default="")
    device_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_evidence_ticket_id", "ticket_id", "ts"),)


class SeenAlert(Base):
    """Every alert id ever handled: raising it again changes nothing."""

    __tablename__ = "seen_alerts"

    alert_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    incident_key: Mapped[str] = mapped_column(String(200))
    ticket_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    seen_at: Mapped[datetime]


class ComplaintRow(Base):
    __tablename__ = "complaints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[datetime]
    category: Mapped[str] = mapped_column(String(32))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_id: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(2000), default="")
    source: Mapped[str] = mapped_column(String(16))
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id"))
    linked: Mapped[bool] = mapped_column(Boolean)  # joined an existing ticket
    pre_empted: Mapped[bool] = mapped_column(Boolean)
    lead_min: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_complaints_ticket_id", "ticket_id"),
        Index("ix_complaints_ts", "ts"),
    )


class Open311Request(Base):
    """What a GeoReport v2 request carried beyond its complaint: address, media, the
    reporter's contact and the service's attributes.

    A request placed on the map was filed as the complaint of the same id; one whose
    address could not be placed has no complaint row and waits for an operator."""

    __tablename__ = "open311_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested_at: Mapped[datetime]
    service_code: Mapped[str] = mapped_column(String(32))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    located_by: Mapped[str] = mapped_column(String(16))  # point | device | site | grid | none
    address: Mapped[str] = mapped_column(String(500), default="")
    address_id: Mapped[str] = mapped_column(String(100), default="")
    zipcode: Mapped[str] = mapped_column(String(20), default="")
    description: Mapped[str] = mapped_column(String(2000), default="")
    media_url: Mapped[str] = mapped_column(String(1000), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    device_id: Mapped[str] = mapped_column(String(100), default="")
    account_id: Mapped[str] = mapped_column(String(100), default="")
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_open311_requests_requested_at", "requested_at"),)


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[str] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    ts: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_log_ticket_id", "ticket_id", "id"),)


class OutboxRow(Base):
    """One ticket event waiting to be (or already) published, in commit order."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_id: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "id",
            sqlite_where=text("published_at IS NULL"),
            postgresql_where=text("published_at IS NULL"),
        ),
    )


class NearMiss(Base):
    """An incident that was considered and not raised, with why not."""

    __tablename__ = "near_misses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ts: Mapped[datetime]
    incident_key: Mapped[str] = mapped_column(String(200))
    grid_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    why_not: Mapped[str] = mapped_column(String(500))
    rule_version: Mapped[str] = mapped_column(String(64), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_near_misses_ts", "ts"), Index("ix_near_misses_grid", "grid_id"))


class StormPeriod(Base):
    """A rainstorm over a district (storm mode on → off), from its storm alerts.

    At most one open period (``ended_at`` NULL) per district: the partial unique index
    makes two workers recording the same storm end in one row."""

    __tablename__ = "storm_periods"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    district_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    peak_share: Mapped[float] = mapped_column(Float)  # highest share of grids in heavy rain
    alert_ids: Mapped[list[str]] = mapped_column(JSON, default=list)  # storm alerts, in order
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "uq_storm_periods_open_district",
            "district_id",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
        Index("ix_storm_periods_district_started", "district_id", "started_at"),
    )
