"""Alerts sent (and their cooldowns).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

import sqlalchemy as sa

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("rule", sa.String(48), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("ix_alerts_rule_fired", "alerts", ["rule", "fired_at"])


def downgrade() -> None:
    op.drop_table("alerts")
