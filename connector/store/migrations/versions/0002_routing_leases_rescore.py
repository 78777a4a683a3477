"""Round-robin routing pointers, leases for several instances, and the re-scoring marker
on contacts (set whenever a contact or its activities change).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import connector.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('leases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', connector.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_leases'))
    )
    op.create_table('routing_pointers',
    sa.Column('team', sa.String(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('updated_at', connector.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('team', name=op.f('pk_routing_pointers'))
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("inputs_changed_at", connector.store.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_contacts_inputs_changed_at"), ["inputs_changed_at"], unique=False)
    # Contacts stored before this revision have never been scored: mark them all changed.
    op.execute("UPDATE contacts SET inputs_changed_at = updated_at")


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_inputs_changed_at"))
        batch_op.drop_column("inputs_changed_at")
    op.drop_table("routing_pointers")
    op.drop_table("leases")
