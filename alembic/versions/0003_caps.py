"""The cap chain's books: spend counters, reservations, the call ledger, app flags.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(14, 6)
UUID = postgresql.UUID(as_uuid=True)


def upgrade() -> None:
    op.create_table(
        "spend_counters",
        sa.Column("scope", sa.Text, primary_key=True),
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("spent_usd", MONEY, nullable=False, server_default="0"),
        sa.Column("reserved_usd", MONEY, nullable=False, server_default="0"),
        sa.CheckConstraint("reserved_usd >= 0", name="ck_spend_reserved_nonnegative"),
    )
    op.create_table(
        "reservations",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("user_id", UUID),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("amount_usd", MONEY, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("settled_at", TS),
    )
    op.create_index(
        "ix_reservations_open",
        "reservations",
        ["expires_at"],
        postgresql_where=sa.text("settled_at IS NULL"),
    )
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("user_id", UUID),
        sa.Column("conversation_id", UUID),
        sa.Column("feature", sa.String(32), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("prompt_version", sa.String(32)),
        sa.Column("admission", sa.String(32), nullable=False),
        sa.Column("status", sa.String(48), nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cached_input_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_usd", MONEY, nullable=False, server_default="0"),
        sa.Column("reserved_usd", MONEY, nullable=False, server_default="0"),
        sa.Column("ttft_ms", sa.Numeric(10, 1)),
        sa.Column("latency_ms", sa.Numeric(10, 1)),
        sa.Column("reservation_id", UUID, unique=True),
        sa.Column("trace_id", sa.String(32)),
    )
    op.create_index("ix_llm_calls_created_at", "llm_calls", ["created_at"])
    op.create_index("ix_llm_calls_user_created", "llm_calls", ["user_id", "created_at"])
    op.create_table(
        "app_flags",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_by", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("app_flags")
    op.drop_table("llm_calls")
    op.drop_table("reservations")
    op.drop_table("spend_counters")
