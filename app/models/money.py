"""Spend counters, reservations against them, and the ledger of model calls."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class SpendCounter(Base):
    """Money spent and reserved in one scope ('user:<id>' or 'global') for one period."""

    __tablename__ = "spend_counters"

    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD or YYYY-MM
    spent_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0)
    reserved_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0)


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
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0)
    reserved_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0)
    ttft_ms: Mapped[float | None] = mapped_column(Numeric(10, 1), nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Numeric(10, 1), nullable=True)
    reservation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    trace_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    provider: Mapped[str] = mapped_column(Text, default="")
    # "settings", "genai-prices 0.2.3 openai/gpt-4o-mini", "ragship 2026-11-01", "reservation"
    price_source: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    cache_hit: Mapped[bool] = mapped_column(default=False)
    saved_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0)  # a cache hit's saving
    question: Mapped[str | None] = mapped_column(Text, nullable=True)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)
    api_token_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    # main, canary or route:short (app/llm/routing.py); NULL for calls that are not answers
    arm: Mapped[str | None] = mapped_column(String(32), nullable=True)
