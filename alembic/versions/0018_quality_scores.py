"""Quality watched in production: judge scores of sampled live answers, per model and
prompt version (app/quality/, docs/evals.md).

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

import sqlalchemy as sa

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_scores",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        # One row per scored answer: the unique call id is what stops two replicas from
        # scoring the same answer twice.
        sa.Column(
            "call_id",
            sa.BigInteger(),
            sa.ForeignKey("llm_calls.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("call_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("prompt_version", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),  # claimed, retry, scored, ...
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.Text(), nullable=False, server_default=""),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("groundedness", sa.Numeric(5, 4), nullable=True),
        sa.Column("relevance", sa.Numeric(5, 4), nullable=True),
        sa.Column("citation_validity", sa.Numeric(5, 4), nullable=True),
        sa.Column("dont_know", sa.Boolean(), nullable=True),
        sa.Column("judge_model", sa.Text(), nullable=True),
        sa.Column("judge_prompt_version", sa.String(32), nullable=True),
        sa.Column("judge_cost_usd", sa.Numeric(14, 6), nullable=False, server_default="0"),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("ix_quality_scores_call_at", "quality_scores", ["call_at"])
    op.create_index("ix_quality_scores_status", "quality_scores", ["status", "claimed_at"])


def downgrade() -> None:
    op.drop_table("quality_scores")
