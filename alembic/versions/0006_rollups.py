"""Observability: more fields on each call, and rollups that keep the dashboard fast.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BUCKETS = 17  # app/observability/rollups.py LATENCY_BUCKETS_MS, plus +Inf


def upgrade() -> None:
    op.add_column(
        "llm_calls", sa.Column("attempts", sa.Integer, nullable=False, server_default="1")
    )
    op.add_column("llm_calls", sa.Column("provider", sa.Text, nullable=False, server_default=""))
    op.add_column("llm_calls", sa.Column("request_id", sa.String(32)))
    op.add_column(
        "llm_calls", sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false())
    )
    zeros = sa.text("array_fill(0::bigint, ARRAY[17])")  # BUCKETS zeros
    op.create_table(
        "call_rollups_hourly",
        sa.Column("hour", TS, primary_key=True),
        sa.Column("feature", sa.String(32), primary_key=True),
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("outcome", sa.String(64), primary_key=True),
        sa.Column("calls", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Numeric(18, 6), nullable=False, server_default="0"),
        sa.Column(
            "latency_hist", postgresql.ARRAY(sa.BigInteger), nullable=False, server_default=zeros
        ),
        sa.Column(
            "ttft_hist", postgresql.ARRAY(sa.BigInteger), nullable=False, server_default=zeros
        ),
    )
    op.create_table(
        "user_rollups_daily",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("user_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("calls", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Numeric(18, 6), nullable=False, server_default="0"),
    )
    op.create_index("ix_user_rollups_daily_user", "user_rollups_daily", ["user_id", "day"])


def downgrade() -> None:
    op.drop_table("user_rollups_daily")
    op.drop_table("call_rollups_hourly")
    for column in ("cache_hit", "request_id", "provider", "attempts"):
        op.drop_column("llm_calls", column)
