"""RFP questions keep their library suggestions (item ids and scores), and the RFP when they
were ranked

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 06:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('rfp_questions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suggested', sa.JSON(), nullable=True))
    with op.batch_alter_table('rfps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suggested_at', store.models.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('rfps', schema=None) as batch_op:
        batch_op.drop_column('suggested_at')
    with op.batch_alter_table('rfp_questions', schema=None) as batch_op:
        batch_op.drop_column('suggested')
