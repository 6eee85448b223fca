"""The response cache: first-turn answers keyed by corpus, prompt version and model;
llm_calls.saved_usd, what a cache hit saved; conversations' running summaries.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import JSONB

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "response_cache",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("corpus_version", sa.String(32), nullable=False),
        sa.Column("prompt_version", sa.String(32), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("question_hash", sa.String(64), nullable=False),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("passages", JSONB(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(14, 6), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index(
        "ix_response_cache_key",
        "response_cache",
        ["corpus_version", "prompt_version", "model", "question_hash"],
    )
    # What a call saved: the live cost of the answer a cache hit served again.
    op.add_column(
        "llm_calls",
        sa.Column("saved_usd", sa.Numeric(14, 6), nullable=False, server_default="0"),
    )
    # The running summary of a conversation's older turns, and the last message it covers.
    op.add_column("conversations", sa.Column("summary", sa.Text(), nullable=True))
    op.add_column("conversations", sa.Column("summary_through", sa.BigInteger(), nullable=True))
    op.execute(
        "CREATE INDEX ix_response_cache_embedding_hnsw ON response_cache "
        "USING hnsw (embedding vector_cosine_ops)"
    )


def downgrade() -> None:
    op.drop_column("conversations", "summary_through")
    op.drop_column("conversations", "summary")
    op.drop_column("llm_calls", "saved_usd")
    op.drop_table("response_cache")
