"""Model routing and canary: the arm of each call (main, canary, route:short), and of
each cached answer, so that the canary side and the main side never share one.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

import sqlalchemy as sa

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("llm_calls", sa.Column("arm", sa.String(32), nullable=True))
    op.add_column(
        "response_cache",
        sa.Column("arm", sa.String(32), nullable=False, server_default="main"),
    )


def downgrade() -> None:
    op.drop_column("response_cache", "arm")
    op.drop_column("llm_calls", "arm")
