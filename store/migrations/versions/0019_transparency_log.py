"""audit: the transparency log (a Merkle tree over the audit rows) and its signed tree heads

Adds ``audit_events.leaf_index``, ``audit_head.tree_size``, ``merkle_nodes`` and
``tree_heads``, then places every existing row in the tree (``store.transparency.backfill``:
its leaf hash and the subtrees it completes, in id order). The chain's hashes are untouched.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('leaf_index', sa.BigInteger(), nullable=True))
        batch_op.create_unique_constraint('uq_audit_events_leaf_index', ['leaf_index'])
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tree_size', sa.BigInteger(), server_default='0',
                                      nullable=False))
    op.create_table(
        'merkle_nodes',
        sa.Column('level', sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint('level', 'idx'),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'tree_heads',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('tree_size', sa.BigInteger(), nullable=False),
        sa.Column('root_hash', sa.String(length=64), nullable=False),
        sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('signature', sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_tree_heads_tree_size', 'tree_heads', ['tree_size'], unique=False)
    # The rows so far become the first leaves (a no-op on an empty log).
    from store.transparency import backfill

    backfill(Session(bind=op.get_bind()))


def downgrade() -> None:
    op.drop_index('ix_tree_heads_tree_size', table_name='tree_heads')
    op.drop_table('tree_heads')
    op.drop_table('merkle_nodes')
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('tree_size')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_audit_events_leaf_index', type_='unique')
        batch_op.drop_column('leaf_index')
