"""The chunks' HNSW index rebuilt with ef_construction 128 (pgvector's default is 64).

At 100k synthetic chunks the index built with pgvector's defaults (m 16, ef_construction
64) gave recall@10 between 0.907 and 0.977 at `RETRIEVAL_EF_SEARCH` 200 from one build of
the same vectors to the next (`python -m bench scale_100k`, docs/retrieval.md); a graph
built with a wider candidate list finds its neighbours more reliably at the same query
cost, for a build about twice as long (pgvector's README: "higher value provides better
recall at the cost of index build time / insert speed"). The index is dropped and built
again, which takes as long as a fresh build of the corpus's index (seconds for a few
thousand chunks, minutes at 100k).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_INDEX = "ix_chunks_embedding_hnsw"
_CREATE = "CREATE INDEX {name} ON chunks USING hnsw (embedding vector_cosine_ops){options}"


def upgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {_INDEX}")
    op.execute(_CREATE.format(name=_INDEX, options=" WITH (m = 16, ef_construction = 128)"))


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {_INDEX}")
    op.execute(_CREATE.format(name=_INDEX, options=""))
