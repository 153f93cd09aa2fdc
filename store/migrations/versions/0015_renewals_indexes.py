"""renewals view indexes: subscriptions (status, term_end) and (owner_id, status, term_end),
subscription_terms (end)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 17:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index('ix_subscriptions_renewing', ['status', 'term_end'], unique=False)
        batch_op.create_index('ix_subscriptions_owner_renewing',
                              ['owner_id', 'status', 'term_end'], unique=False)
    with op.batch_alter_table('subscription_terms', schema=None) as batch_op:
        batch_op.create_index('ix_subscription_terms_end', ['end'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('subscription_terms', schema=None) as batch_op:
        batch_op.drop_index('ix_subscription_terms_end')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index('ix_subscriptions_owner_renewing')
        batch_op.drop_index('ix_subscriptions_renewing')
