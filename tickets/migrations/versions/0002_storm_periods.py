"""storm periods: a rainstorm over a district, recorded from its storm mode alerts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 05:00:36.310029
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storm_periods",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("district_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("peak_share", sa.Float(), nullable=False),
        sa.Column("alert_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storm_periods")),
    )
    with op.batch_alter_table("storm_periods", schema=None) as batch_op:
        batch_op.create_index(
            "ix_storm_periods_district_started", ["district_id", "started_at"], unique=False
        )
        batch_op.create_index(
            "uq_storm_periods_open_district",
            ["district_id"],
            unique=True,
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("storm_periods", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_storm_periods_open_district",
            sqlite_where=sa.text("ended_at IS NULL"),
            postgresql_where=sa.text("ended_at IS NULL"),
        )
        batch_op.drop_index("ix_storm_periods_district_started")

    op.drop_table("storm_periods")
