"""The dashboard's rollups: written only with SQL upserts (app/observability/rollups.py)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, DateTime, Index, Numeric, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base

# 17 zeros: one per latency bucket, app/observability/rollups.py N_BUCKETS (migration 0006).
_ZERO_HIST = text("array_fill(0::bigint, ARRAY[17])")


class CallRollupHourly(Base):
    """Calls, tokens, cost and latency histograms per hour, feature, model and outcome."""

    __tablename__ = "call_rollups_hourly"

    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    feature: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(Text, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(64), primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger, server_default="0")
    input_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    output_tokens: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(18, 6), server_default="0")
    latency_hist: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=_ZERO_HIST)
    ttft_hist: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=_ZERO_HIST)


class UserRollupDaily(Base):
    """Calls and cost per user per UTC day."""

    __tablename__ = "user_rollups_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    calls: Mapped[int] = mapped_column(BigInteger, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(18, 6), server_default="0")

    __table_args__ = (
        Index("ix_user_rollups_daily_user", "user_id", "day"),
        # Migration 0009: the dashboard's per-day scan reads the index alone.
        Index(
            "ix_user_rollups_daily_day_covering",
            "day",
            postgresql_include=["user_id", "calls", "cost_usd"],
        ),
    )
