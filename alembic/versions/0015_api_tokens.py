"""Personal access tokens (only their SHA-256 is stored), and the token each call came with.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column(
            "user_id",
            UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.add_column("llm_calls", sa.Column("api_token_id", UUID(as_uuid=True), nullable=True))
    op.create_index(
        "ix_llm_calls_api_token_id",
        "llm_calls",
        ["api_token_id"],
        postgresql_where=sa.text("api_token_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_llm_calls_api_token_id", table_name="llm_calls")
    op.drop_column("llm_calls", "api_token_id")
    op.drop_table("api_tokens")
