"""Outbox rows that reach their workflow through a parent (a deal's process)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('workflow_starts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('parent_type', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('parent_payload', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('signal', sa.String(length=50), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workflow_starts', schema=None) as batch_op:
        batch_op.drop_column('signal')
        batch_op.drop_column('parent_payload')
        batch_op.drop_column('parent_type')
        batch_op.drop_column('parent_id')
