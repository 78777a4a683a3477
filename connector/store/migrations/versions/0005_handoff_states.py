"""What the pull-back keeps besides `sales_outcomes`: where each handed-off lead stands in
Salesforce now (status, owner, conversion, opportunity stage, amount and close date, won or
lost, reasons, last touch).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.store.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = connector.store.models.UTCDateTime(timezone=True)
    op.create_table(
        "handoff_states",
        sa.Column("hubspot_id", sa.String(length=32), nullable=False),
        sa.Column("lead_id", sa.String(length=18), nullable=True),
        sa.Column("contact_id", sa.String(length=18), nullable=True),
        sa.Column("account_id", sa.String(length=18), nullable=True),
        sa.Column("opportunity_id", sa.String(length=18), nullable=True),
        sa.Column("status", sa.String(length=64), nullable=True),
        sa.Column("owner_id", sa.String(length=18), nullable=True),
        sa.Column("is_converted", sa.Boolean(), nullable=False),
        sa.Column("converted_on", sa.Date(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("stage", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("loss_reason", sa.Text(), nullable=True),
        sa.Column("last_touch_at", when, nullable=True),
        sa.Column("lead_changed_at", when, nullable=True),
        sa.Column("opportunity_changed_at", when, nullable=True),
        sa.Column("updated_at", when, nullable=False),
        sa.PrimaryKeyConstraint("hubspot_id", name=op.f("pk_handoff_states")),
    )


def downgrade() -> None:
    op.drop_table("handoff_states")
