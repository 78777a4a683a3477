"""The hand-off SLA's breaches and the reassignments they caused, each recorded once by its
stable key, so a re-run of the pull-back alerts nobody twice and moves no Lead twice.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.store.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = connector.store.models.UTCDateTime(timezone=True)
    op.create_table(
        "sla_breaches",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("hubspot_id", sa.String(length=32), nullable=False),
        sa.Column("lead_id", sa.String(length=18), nullable=False),
        sa.Column("owner_id", sa.String(length=18), nullable=False),
        sa.Column("timer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=True),
        sa.Column("assigned_at", when, nullable=False),
        sa.Column("due_at", when, nullable=False),
        sa.Column("met_at", when, nullable=True),
        sa.Column("to_owner", sa.String(length=18), nullable=True),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("found_at", when, nullable=False),
        sa.ForeignKeyConstraint(["timer_id"], ["sla_timers.id"],
                                name=op.f("fk_sla_breaches_timer_id_sla_timers")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sla_breaches")),
    )
    op.create_index(op.f("ix_sla_breaches_hubspot_id"), "sla_breaches", ["hubspot_id"])
    op.create_index(op.f("ix_sla_breaches_owner_id"), "sla_breaches", ["owner_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sla_breaches_owner_id"), table_name="sla_breaches")
    op.drop_index(op.f("ix_sla_breaches_hubspot_id"), table_name="sla_breaches")
    op.drop_table("sla_breaches")
