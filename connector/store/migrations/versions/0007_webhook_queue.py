"""The webhook queue: contacts HubSpot's webhooks said changed, one row per contact, drained
by the targeted sync (pull, score and push of just those contacts).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = connector.store.models.UTCDateTime(timezone=True)
    op.create_table(
        "webhook_queue",
        sa.Column("hubspot_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("queued_at", when, nullable=False),
        sa.Column("updated_at", when, nullable=False),
        sa.Column("taken_seq", sa.Integer(), nullable=True),
        sa.Column("taken_by", sa.String(length=36), nullable=True),
        sa.Column("taken_at", when, nullable=True),
        sa.PrimaryKeyConstraint("hubspot_id", name=op.f("pk_webhook_queue")),
    )
    op.create_index(op.f("ix_webhook_queue_queued_at"), "webhook_queue", ["queued_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_queue_queued_at"), table_name="webhook_queue")
    op.drop_table("webhook_queue")
