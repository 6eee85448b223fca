"""Status page: probe history and incidents.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "status_probes",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("component", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Numeric(10, 1)),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("checked_at", TS, nullable=False),
    )
    op.create_index("ix_status_probes_component_time", "status_probes", ["component", "checked_at"])
    op.create_table(
        "incidents",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("component", sa.String(32), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
    )
    op.create_index(
        "ix_incidents_open",
        "incidents",
        ["component"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("incidents")
    op.drop_table("status_probes")
