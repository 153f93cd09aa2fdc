"""Closed workflow runs' histories, archived past Temporal's retention

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 19:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workflow_histories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workflow_id', sa.String(length=200), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('workflow_type', sa.String(length=100), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=True),
    sa.Column('task_queue', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('closed_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('archived_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('run_id')
    )
    with op.batch_alter_table('workflow_histories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workflow_histories_workflow_id'), ['workflow_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_workflow_histories_deal_id'), ['deal_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_workflow_histories_closed_at'), ['closed_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('workflow_histories', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workflow_histories_closed_at'))
        batch_op.drop_index(batch_op.f('ix_workflow_histories_deal_id'))
        batch_op.drop_index(batch_op.f('ix_workflow_histories_workflow_id'))
    op.drop_table('workflow_histories')
