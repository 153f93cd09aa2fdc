"""Renewal pricing method per subscription; the contract template a contract came from

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 19:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('renewal_pricing', sa.String(length=12), nullable=False,
                                      server_default='uplift'))
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('template', sa.String(length=40), nullable=True))
    with op.batch_alter_table('envelopes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contract_template', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('envelopes', schema=None) as batch_op:
        batch_op.drop_column('contract_template')
    with op.batch_alter_table('contracts', schema=None) as batch_op:
        batch_op.drop_column('template')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('renewal_pricing')
