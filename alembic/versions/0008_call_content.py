"""The call log's content (question and answer), kept as CONTENT_LOGGING says.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

import sqlalchemy as sa

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("llm_calls", sa.Column("question", sa.Text))
    op.add_column("llm_calls", sa.Column("answer", sa.Text))


def downgrade() -> None:
    op.drop_column("llm_calls", "answer")
    op.drop_column("llm_calls", "question")
