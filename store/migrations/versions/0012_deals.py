"""Deals: a deals table; quotes, RFPs, proposals and envelopes get a deal_id; every existing
quote becomes a deal of its own

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 11:03:40.102481
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

import store.models

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

LINKED = ('quotes', 'rfps', 'proposals', 'envelopes')
"""The tables whose rows belong to a deal."""

STAGE_OF_QUOTE = {
    'draft': 'quote',
    'changes_requested': 'quote',
    'rejected': 'quote',
    'pending_approval': 'approval',
    'approved': 'proposal',
    'won': 'won',
}
"""A quote's status as the stage of its deal. An approved quote is next to be proposed to
the customer, so its deal is at ``proposal``; a rejected quote or one sent back for changes
is being reworked, so its deal is at ``quote`` again. Any other status counts as ``quote``."""

FORECAST_OF_STAGE = {'quote': 'pipeline', 'approval': 'best_case', 'proposal': 'best_case',
                     'won': 'closed'}
"""store.deals.forecast_of, frozen here for the stages this migration writes."""


def upgrade() -> None:
    op.create_table('deals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('forecast_category', sa.String(length=20), nullable=False),
    sa.Column('expected_close', sa.Date(), nullable=True),
    sa.Column('lost_reason', sa.Text(), nullable=False),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deals_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deals_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_deals_stage'), ['stage'], unique=False)

    for table in LINKED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('deal_id', sa.Integer(), nullable=True))
            batch_op.create_index(f'ix_{table}_deal_id', ['deal_id'], unique=False)
            batch_op.create_foreign_key(f'fk_{table}_deal_id', 'deals', ['deal_id'], ['id'])

    _quotes_become_deals()


def _quotes_become_deals() -> None:
    """One deal per quote, named after it, at the quote's net amount, owned by its owner."""
    quotes = sa.table('quotes', sa.column('id', sa.Integer), sa.column('account_id', sa.Integer),
                      sa.column('owner_id', sa.Integer), sa.column('title', sa.String),
                      sa.column('net_amount', sa.BigInteger), sa.column('currency', sa.String),
                      sa.column('status', sa.String), sa.column('deal_id', sa.Integer),
                      sa.column('created_at', store.models.UTCDateTime),
                      sa.column('updated_at', store.models.UTCDateTime))
    deals = sa.table('deals', sa.column('id', sa.Integer), sa.column('account_id', sa.Integer),
                     sa.column('owner_id', sa.Integer), sa.column('name', sa.String),
                     sa.column('amount', sa.BigInteger), sa.column('currency', sa.String),
                     sa.column('stage', sa.String), sa.column('forecast_category', sa.String),
                     sa.column('lost_reason', sa.Text),
                     sa.column('created_at', store.models.UTCDateTime),
                     sa.column('updated_at', store.models.UTCDateTime))
    bind = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    for q in bind.execute(sa.select(quotes).order_by(quotes.c.id)).all():
        stage = STAGE_OF_QUOTE.get(q.status, 'quote')
        deal_id = bind.execute(sa.insert(deals).values(
            account_id=q.account_id, owner_id=q.owner_id, name=q.title, amount=q.net_amount,
            currency=q.currency, stage=stage, forecast_category=FORECAST_OF_STAGE[stage],
            lost_reason='', created_at=q.created_at or now,
            updated_at=q.updated_at or now).returning(deals.c.id)).scalar_one()
        bind.execute(sa.update(quotes).where(quotes.c.id == q.id).values(deal_id=deal_id))


def downgrade() -> None:
    for table in reversed(LINKED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'fk_{table}_deal_id', type_='foreignkey')
            batch_op.drop_index(f'ix_{table}_deal_id')
            batch_op.drop_column('deal_id')

    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deals_stage'))
        batch_op.drop_index(batch_op.f('ix_deals_owner_id'))
        batch_op.drop_index(batch_op.f('ix_deals_account_id'))

    op.drop_table('deals')
