"""Proposals: the draft, its submitted versions (stored by hash) and their review steps and
tasks; library items keep a rich section (DOCX) per version and the template names it uses

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 10:13:14.491881
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('library_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('docx_fields', sa.JSON(), nullable=True))
    with op.batch_alter_table('library_item_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('docx_sha256', sa.String(length=64), nullable=True))
    op.create_table('proposals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('quote_id', sa.Integer(), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('sections', sa.JSON(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('customer_signer', sa.String(length=200), nullable=False),
    sa.Column('customer_signer_title', sa.String(length=200), nullable=False),
    sa.Column('custom_fields', sa.JSON(), nullable=False),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['quote_id'], ['quotes.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposals_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposals_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposals_quote_id'), ['quote_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposals_status'), ['status'], unique=False)

    op.create_table('proposal_tasks',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('step_key', sa.String(length=60), nullable=False),
    sa.Column('step_name', sa.String(length=200), nullable=False),
    sa.Column('queue_role', sa.String(length=40), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('assignee_name', sa.String(length=200), nullable=False),
    sa.Column('on_behalf_of_name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=30), nullable=False),
    sa.Column('decided_by_name', sa.String(length=200), nullable=False),
    sa.Column('decided_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('due_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('proposal_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposal_tasks_assignee_id'), ['assignee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposal_tasks_proposal_id'), ['proposal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposal_tasks_queue_role'), ['queue_role'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposal_tasks_state'), ['state'], unique=False)

    op.create_table('proposal_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('proposal_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('sections', sa.JSON(), nullable=False),
    sa.Column('facts', sa.JSON(), nullable=False),
    sa.Column('docx_sha256', sa.String(length=64), nullable=False),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=True),
    sa.Column('workflow_id', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('policy_name', sa.String(length=100), nullable=False),
    sa.Column('policy_version', sa.Integer(), nullable=False),
    sa.Column('submitted_by_id', sa.Integer(), nullable=False),
    sa.Column('submitted_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['proposal_id'], ['proposals.id'], ),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('proposal_id', 'version'),
    sa.UniqueConstraint('workflow_id')
    )
    with op.batch_alter_table('proposal_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposal_versions_proposal_id'), ['proposal_id'], unique=False)

    op.create_table('proposal_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=60), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=30), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('carried_from', sa.JSON(), nullable=True),
    sa.Column('due_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['version_id'], ['proposal_versions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('version_id', 'key')
    )
    with op.batch_alter_table('proposal_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposal_steps_version_id'), ['version_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('proposal_steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proposal_steps_version_id'))

    op.drop_table('proposal_steps')
    with op.batch_alter_table('proposal_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proposal_versions_proposal_id'))

    op.drop_table('proposal_versions')
    with op.batch_alter_table('proposal_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proposal_tasks_state'))
        batch_op.drop_index(batch_op.f('ix_proposal_tasks_queue_role'))
        batch_op.drop_index(batch_op.f('ix_proposal_tasks_proposal_id'))
        batch_op.drop_index(batch_op.f('ix_proposal_tasks_assignee_id'))

    op.drop_table('proposal_tasks')
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proposals_status'))
        batch_op.drop_index(batch_op.f('ix_proposals_quote_id'))
        batch_op.drop_index(batch_op.f('ix_proposals_owner_id'))
        batch_op.drop_index(batch_op.f('ix_proposals_account_id'))

    op.drop_table('proposals')
    with op.batch_alter_table('library_item_versions', schema=None) as batch_op:
        batch_op.drop_column('docx_sha256')
    with op.batch_alter_table('library_items', schema=None) as batch_op:
        batch_op.drop_column('docx_fields')
