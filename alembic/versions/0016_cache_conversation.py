"""The conversation a cached answer was first given in: deleting the conversation deletes it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "response_cache",
        sa.Column(
            "conversation_id",
            UUID(as_uuid=True),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=True,
        ),
    )
    op.create_index("ix_response_cache_conversation_id", "response_cache", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_response_cache_conversation_id", table_name="response_cache")
    op.drop_column("response_cache", "conversation_id")
