"""initial ticket store

Revision ID: 0001
Revises:
Create Date: 2026-11-23 15:29:24.983353
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "near_misses",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("incident_key", sa.String(length=200), nullable=False),
        sa.Column("grid_id", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("why_not", sa.String(length=500), nullable=False),
        sa.Column("rule_version", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_near_misses")),
    )
    with op.batch_alter_table("near_misses", schema=None) as batch_op:
        batch_op.create_index("ix_near_misses_grid", ["grid_id"], unique=False)
        batch_op.create_index("ix_near_misses_ts", ["ts"], unique=False)

    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_unpublished",
            ["id"],
            unique=False,
            sqlite_where=sa.text("published_at IS NULL"),
            postgresql_where=sa.text("published_at IS NULL"),
        )

    op.create_table(
        "seen_alerts",
        sa.Column("alert_id", sa.String(length=128), nullable=False),
        sa.Column("incident_key", sa.String(length=200), nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_seen_alerts")),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("incident_key", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("grid_id", sa.String(length=64), nullable=False),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("micro_grid_id", sa.String(length=64), nullable=True),
        sa.Column("site", sa.String(length=64), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("why", sa.String(length=500), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("expected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ack_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolve_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ack_breached", sa.Boolean(), nullable=False),
        sa.Column("resolve_breached", sa.Boolean(), nullable=False),
        sa.Column("escalation_stage", sa.Integer(), nullable=False),
        sa.Column("last_reminder_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assignee", sa.String(length=64), nullable=False),
        sa.Column("agency", sa.String(length=64), nullable=False),
        sa.Column("closing_code", sa.String(length=16), nullable=True),
        sa.Column("rule_version", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("evidence_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_created_at", ["created_at"], unique=False)
        batch_op.create_index("ix_tickets_incident_key", ["incident_key"], unique=False)
        batch_op.create_index("ix_tickets_state_grid", ["state", "grid_id"], unique=False)
        batch_op.create_index(
            "uq_tickets_active_incident",
            ["incident_key"],
            unique=True,
            sqlite_where=sa.text("state IN ('acknowledged', 'dispatched', 'open', 'pre_alert')"),
            postgresql_where=sa.text(
                "state IN ('acknowledged', 'dispatched', 'open', 'pre_alert')"
            ),
        )

    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_audit_log_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_ticket_id", ["ticket_id", "id"], unique=False)

    op.create_table(
        "complaints",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("grid_id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("linked", sa.Boolean(), nullable=False),
        sa.Column("pre_empted", sa.Boolean(), nullable=False),
        sa.Column("lead_min", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_complaints_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index("ix_complaints_ticket_id", ["ticket_id"], unique=False)
        batch_op.create_index("ix_complaints_ts", ["ts"], unique=False)

    op.create_table(
        "evidence",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ticket_id", sa.String(length=32), nullable=False),
        sa.Column("alert_id", sa.String(length=128), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("expected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("why", sa.String(length=500), nullable=False),
        sa.Column("rule_version", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("device_ids", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_evidence_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evidence")),
    )
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.create_index("ix_evidence_ticket_id", ["ticket_id", "ts"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_index("ix_evidence_ticket_id")

    op.drop_table("evidence")
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index("ix_complaints_ts")
        batch_op.drop_index("ix_complaints_ticket_id")

    op.drop_table("complaints")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_ticket_id")

    op.drop_table("audit_log")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_tickets_active_incident",
            sqlite_where=sa.text("state IN ('acknowledged', 'dispatched', 'open', 'pre_alert')"),
            postgresql_where=sa.text(
                "state IN ('acknowledged', 'dispatched', 'open', 'pre_alert')"
            ),
        )
        batch_op.drop_index("ix_tickets_state_grid")
        batch_op.drop_index("ix_tickets_incident_key")
        batch_op.drop_index("ix_tickets_created_at")

    op.drop_table("tickets")
    op.drop_table("seen_alerts")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_unpublished",
            sqlite_where=sa.text("published_at IS NULL"),
            postgresql_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("outbox")
    with op.batch_alter_table("near_misses", schema=None) as batch_op:
        batch_op.drop_index("ix_near_misses_ts")
        batch_op.drop_index("ix_near_misses_grid")

    op.drop_table("near_misses")
