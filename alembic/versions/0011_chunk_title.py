"""Chunks know their document's title: it is keyword-indexed with the heading path.

The full-text vector labels the title and heading path 'A' and the text 'D', so the
keyword side can weigh a match in the title or heading path apart from one in the text
(app/rag/retrieve.py sets the weights).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TSV = (
    "setweight(to_tsvector('english', title || ' ' || heading_path), 'A') "
    "|| setweight(to_tsvector('english', text), 'D')"
)
OLD_TSV = "to_tsvector('english', heading_path || ' ' || text)"


def _replace_tsv(expression: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_chunks_tsv")
    op.drop_column("chunks", "tsv")
    op.add_column(
        "chunks",
        sa.Column("tsv", postgresql.TSVECTOR, sa.Computed(expression, persisted=True)),
    )
    op.execute("CREATE INDEX ix_chunks_tsv ON chunks USING gin (tsv)")


def upgrade() -> None:
    op.add_column("chunks", sa.Column("title", sa.Text(), nullable=False, server_default=""))
    op.execute("UPDATE chunks SET title = d.title FROM documents d WHERE d.id = chunks.document_id")
    _replace_tsv(TSV)


def downgrade() -> None:
    _replace_tsv(OLD_TSV)
    op.drop_column("chunks", "title")
