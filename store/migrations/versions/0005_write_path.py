"""write path: workflow starts, idempotency keys, worker heartbeats, envelopes prepared by
their workflow

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('workflow_starts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('workflow_id', sa.String(length=200), nullable=False),
    sa.Column('workflow_type', sa.String(length=100), nullable=False),
    sa.Column('task_queue', sa.String(length=200), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workflow_id')
    )
    with op.batch_alter_table('workflow_starts', schema=None) as batch_op:
        batch_op.create_index('ix_workflow_starts_started_at', ['started_at'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=False),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'scope', 'key')
    )

    op.create_table('worker_heartbeats',
    sa.Column('worker_id', sa.String(length=200), nullable=False),
    sa.Column('task_queue', sa.String(length=200), nullable=False),
    sa.Column('started_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seen_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('worker_id')
    )
    with op.batch_alter_table('worker_heartbeats', schema=None) as batch_op:
        batch_op.create_index('ix_worker_heartbeats_task_queue', ['task_queue'], unique=False)

    with op.batch_alter_table('envelopes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upload_sha256', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('upload_name', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('progress', sa.String(length=200), nullable=True))
    with op.batch_alter_table('envelope_recipients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('anchor', sa.String(length=60), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('envelope_recipients', schema=None) as batch_op:
        batch_op.drop_column('anchor')
    with op.batch_alter_table('envelopes', schema=None) as batch_op:
        batch_op.drop_column('progress')
        batch_op.drop_column('upload_name')
        batch_op.drop_column('upload_sha256')
    op.drop_table('worker_heartbeats')
    op.drop_table('idempotency_keys')
    op.drop_table('workflow_starts')
