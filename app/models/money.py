"""Spend counters, reservations against them, and the ledger of model calls."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class SpendCounter(Base):
    """Money spent and reserved in one scope ('user:<id>' or 'global') for one period."""

    __tablename__ = "spend_counters"

    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD or YYYY-MM
    spent_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0, server_default="0")
    reserved_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0, server_default="0")
    # Sharded global counters (migration 0019, docs/caps.md): the counter's shard count (kept
    # on its base row), this row's shard number, this shard's share of the cap and the cap.
    shards: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    shard: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    share_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 6), nullable=True)
    cap_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 6), nullable=True)

    __table_args__ = (CheckConstraint("reserved_usd >= 0", name="ck_spend_reserved_nonnegative"),)


class Reservation(Base):
    __tablename__ = "reservations"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    day: Mapped[str] = mapped_column(String(10))
    month: Mapped[str] = mapped_column(String(7))
    amount_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The global counters' shards the reservation took (migration 0019).
    day_shard: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    month_shard: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")

    __table_args__ = (
        Index("ix_reservations_open", "expires_at", postgresql_where=text("settled_at IS NULL")),
    )


class LLMCall(Base):
    """One record per LLM call or refused attempt: the books and the audit trail."""

    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    feature: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(Text)
    prompt_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    admission: Mapped[str] = mapped_column(String(32))  # "allowed" or the refusing layer
    status: Mapped[str] = mapped_column(String(48))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0, server_default="0")
    reserved_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0, server_default="0")
    ttft_ms: Mapped[float | None] = mapped_column(Numeric(10, 1), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Numeric(10, 1), nullable=True)
    reservation_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), nullable=True, unique=True
    )
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    provider: Mapped[str] = mapped_column(Text, default="", server_default="")
    # "settings", "genai-prices 0.2.3 openai/gpt-4o-mini", "ragship 2026-11-01", "reservation"
    price_source: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cache_hit: Mapped[bool] = mapped_column(default=False, server_default=false())
    # a cache hit's saving
    saved_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0, server_default="0")
    question: Mapped[str | None] = mapped_column(Text, nullable=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    api_token_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    # main, canary or route:short (app/llm/routing.py); NULL for calls that are not answers
    arm: Mapped[str | None] = mapped_column(String(32), nullable=True)

    __table_args__ = (
        Index("ix_llm_calls_created_at", "created_at"),
        Index("ix_llm_calls_user_created", "user_id", "created_at"),
        Index(
            "ix_llm_calls_api_token_id",
            "api_token_id",
            postgresql_where=text("api_token_id IS NOT NULL"),
        ),
    )
