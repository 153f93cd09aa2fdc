"""inbox lane indexes: (state, queue_role | assignee_id, due_at, id), covering the inbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 20:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('approval_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_open_queue_due')
        batch_op.drop_index('ix_tasks_open_assignee_due')
        batch_op.create_index('ix_tasks_queue_lane',
                              ['state', 'queue_role', 'due_at', 'id', 'assignee_id'],
                              unique=False)
        batch_op.create_index('ix_tasks_assignee_lane', ['state', 'assignee_id', 'due_at', 'id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('approval_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_assignee_lane')
        batch_op.drop_index('ix_tasks_queue_lane')
        batch_op.create_index('ix_tasks_open_assignee_due', ['state', 'assignee_id', 'due_at'],
                              unique=False)
        batch_op.create_index('ix_tasks_open_queue_due', ['state', 'queue_role', 'due_at'],
                              unique=False)
