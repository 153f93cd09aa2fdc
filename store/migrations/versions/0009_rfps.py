"""RFP workspace: rfps and their questions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-15 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rfps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('source_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('mapping', sa.JSON(), nullable=True),
    sa.Column('due_date', sa.Date(), nullable=True),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rfps', schema=None) as batch_op:
        batch_op.create_index('ix_rfps_account_id', ['account_id'], unique=False)
        batch_op.create_index('ix_rfps_owner_id', ['owner_id'], unique=False)
        batch_op.create_index('ix_rfps_status', ['status'], unique=False)

    op.create_table('rfp_questions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rfp_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('due_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('top_score', sa.Float(), nullable=True),
    sa.Column('library_item_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['library_item_id'], ['library_items.id'], ),
    sa.ForeignKeyConstraint(['rfp_id'], ['rfps.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rfp_id', 'location')
    )
    with op.batch_alter_table('rfp_questions', schema=None) as batch_op:
        batch_op.create_index('ix_rfp_questions_rfp_id', ['rfp_id'], unique=False)


def downgrade() -> None:
    op.drop_table('rfp_questions')
    op.drop_table('rfps')
