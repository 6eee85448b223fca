"""Which price source (and its version) priced each call.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

import sqlalchemy as sa

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("llm_calls", sa.Column("price_source", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("llm_calls", "price_source")
