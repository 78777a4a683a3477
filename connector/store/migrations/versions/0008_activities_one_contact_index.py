"""Activities keep one index by contact: (contact_id, occurred_at) serves every read by contact,
and the contact_id index beside it cost about a fifth of each insert.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_activities_contact_id", table_name="activities")


def downgrade() -> None:
    op.create_index("ix_activities_contact_id", "activities", ["contact_id"])
