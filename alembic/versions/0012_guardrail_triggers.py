"""One row per guardrail trigger: which layer and rule, what it did, a redacted excerpt.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "guardrail_triggers",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", UUID(as_uuid=True), nullable=True),
        sa.Column("trace_id", sa.String(32), nullable=True),
        sa.Column("layer", sa.String(16), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=True),
    )
    op.create_index("ix_guardrail_triggers_created_at", "guardrail_triggers", ["created_at"])


def downgrade() -> None:
    op.drop_table("guardrail_triggers")
