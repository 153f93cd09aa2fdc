"""content library: items with their versions and tags, full-text search (FTS5 on SQLite,
a generated tsvector with a GIN index on PostgreSQL)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import store.models

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# External content: the FTS table holds only the index; triggers keep it in step with
# library_items whatever writes it (the service, a migration, a hand-written UPDATE).
SQLITE_FTS = (
    "CREATE VIRTUAL TABLE library_fts USING fts5(title, body, tags_text, "
    "content='library_items', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER library_items_ai AFTER INSERT ON library_items BEGIN "
    "INSERT INTO library_fts(rowid, title, body, tags_text) "
    "VALUES (new.id, new.title, new.body, new.tags_text); END",
    "CREATE TRIGGER library_items_ad AFTER DELETE ON library_items BEGIN "
    "INSERT INTO library_fts(library_fts, rowid, title, body, tags_text) "
    "VALUES ('delete', old.id, old.title, old.body, old.tags_text); END",
    "CREATE TRIGGER library_items_au AFTER UPDATE OF title, body, tags_text ON library_items "
    "BEGIN "
    "INSERT INTO library_fts(library_fts, rowid, title, body, tags_text) "
    "VALUES ('delete', old.id, old.title, old.body, old.tags_text); "
    "INSERT INTO library_fts(rowid, title, body, tags_text) "
    "VALUES (new.id, new.title, new.body, new.tags_text); END",
)
# Items are plain text: "<" is hidden from PostgreSQL's parser, which would otherwise take
# "<script>…</script>" for markup and index nothing of it.
PG_SEARCH = (
    "ALTER TABLE library_items ADD COLUMN search tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english', replace(title, '<', ' ')), 'A') || "
    "setweight(to_tsvector('english', replace(tags_text, '<', ' ')), 'B') || "
    "setweight(to_tsvector('english', replace(body, '<', ' ')), 'C')) STORED",
    "CREATE INDEX ix_library_items_search ON library_items USING GIN (search)",
)


def upgrade() -> None:
    op.create_table('library_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('tags_text', sa.Text(), nullable=False),
    sa.Column('docx_sha256', sa.String(length=64), nullable=True),
    sa.Column('image_sha256', sa.String(length=64), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('usage_count', sa.Integer(), nullable=False),
    sa.Column('review_by', sa.Date(), nullable=True),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('created_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('library_items', schema=None) as batch_op:
        batch_op.create_index('ix_library_items_kind', ['kind'], unique=False)
        batch_op.create_index('ix_library_items_owner_id', ['owner_id'], unique=False)
        batch_op.create_index('ix_library_items_review', ['archived', 'review_by', 'owner_id'],
                              unique=False)

    op.create_table('library_item_tags',
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['library_items.id'], ),
    sa.PrimaryKeyConstraint('item_id', 'tag')
    )
    with op.batch_alter_table('library_item_tags', schema=None) as batch_op:
        batch_op.create_index('ix_library_item_tags_tag', ['tag'], unique=False)

    op.create_table('library_item_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('tags_text', sa.Text(), nullable=False),
    sa.Column('edited_by_id', sa.Integer(), nullable=False),
    sa.Column('edited_at', store.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['edited_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['item_id'], ['library_items.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('item_id', 'version')
    )
    with op.batch_alter_table('library_item_versions', schema=None) as batch_op:
        batch_op.create_index('ix_library_item_versions_item_id', ['item_id'], unique=False)

    dialect = op.get_bind().dialect.name
    for statement in SQLITE_FTS if dialect == 'sqlite' else PG_SEARCH if dialect == 'postgresql' else ():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for name in ('library_items_au', 'library_items_ad', 'library_items_ai'):
            op.execute(f'DROP TRIGGER IF EXISTS {name}')
        op.execute('DROP TABLE IF EXISTS library_fts')
    op.drop_table('library_item_versions')
    op.drop_table('library_item_tags')
    op.drop_table('library_items')
