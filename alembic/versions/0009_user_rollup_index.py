"""A covering index for "top users" over long ranges (index-only scans).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_user_rollups_daily_day_covering ON user_rollups_daily (day) "
        "INCLUDE (user_id, calls, cost_usd)"
    )


def downgrade() -> None:
    op.drop_index("ix_user_rollups_daily_day_covering", table_name="user_rollups_daily")
