"""audit: the structured actor (kind, user id, email, name, process) beside its label

Rows written before keep NULL in the new columns and hash exactly as they did (store/audit.py
adds the structured actor to the hashed content only when ``actor_kind`` is set).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor_kind', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('actor_user_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('actor_email', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('actor_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('actor_process', sa.String(length=100), nullable=True))
        batch_op.create_index('ix_audit_events_actor_user_id', ['actor_user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_actor_user_id')
        batch_op.drop_column('actor_process')
        batch_op.drop_column('actor_name')
        batch_op.drop_column('actor_email')
        batch_op.drop_column('actor_user_id')
        batch_op.drop_column('actor_kind')
