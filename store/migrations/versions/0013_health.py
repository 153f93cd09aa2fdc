"""Customer health: measures, daily scores, overrides, the current state per account, the
CSM's tasks; accounts get a csm_id

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 11:23:29.563484
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account_health',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('band', sa.String(length=10), nullable=False),
    sa.Column('overridden', sa.Boolean(), nullable=False),
    sa.Column('computed_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('previous_band', sa.String(length=10), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('account_id')
    )
    with op.batch_alter_table('account_health', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_health_band'), ['band'], unique=False)

    op.create_table('account_measures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('measure', sa.String(length=20), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('measured_on', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'measure', 'measured_on')
    )
    with op.batch_alter_table('account_measures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_measures_account_id'), ['account_id'], unique=False)

    op.create_table('health_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('band', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('set_by_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['set_by_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('health_overrides', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_health_overrides_account_id'), ['account_id'], unique=False)

    op.create_table('health_scores',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('band', sa.String(length=10), nullable=False),
    sa.Column('components', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'day')
    )
    with op.batch_alter_table('health_scores', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_health_scores_account_id'), ['account_id'], unique=False)

    op.create_table('health_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('band', sa.String(length=10), nullable=False),
    sa.Column('previous_band', sa.String(length=10), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('queue_role', sa.String(length=40), nullable=True),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['done_by_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'day', 'band')
    )
    with op.batch_alter_table('health_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_health_tasks_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_health_tasks_assignee_id'), ['assignee_id'], unique=False)

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('csm_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_accounts_csm_id', 'users', ['csm_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_constraint('fk_accounts_csm_id', type_='foreignkey')
        batch_op.drop_column('csm_id')

    with op.batch_alter_table('health_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_health_tasks_assignee_id'))
        batch_op.drop_index(batch_op.f('ix_health_tasks_account_id'))

    op.drop_table('health_tasks')
    with op.batch_alter_table('health_scores', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_health_scores_account_id'))

    op.drop_table('health_scores')
    with op.batch_alter_table('health_overrides', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_health_overrides_account_id'))

    op.drop_table('health_overrides')
    with op.batch_alter_table('account_measures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_measures_account_id'))

    op.drop_table('account_measures')
    with op.batch_alter_table('account_health', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_health_band'))

    op.drop_table('account_health')
