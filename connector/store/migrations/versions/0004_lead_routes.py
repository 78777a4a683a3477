"""The owner chosen for each Lead about to be created, so a create that did not land is sent
again with the same owner.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.store.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lead_routes",
        sa.Column("hubspot_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("use_assignment_rules", sa.Boolean(), nullable=False),
        sa.Column("decided_at", connector.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hubspot_id", name=op.f("pk_lead_routes")),
    )


def downgrade() -> None:
    op.drop_table("lead_routes")
