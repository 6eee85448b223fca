"""Production quality scores."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class QualityScore(Base):
    """The judge's scores of one sampled live answer (app/quality/, docs/evals.md)."""

    __tablename__ = "quality_scores"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    call_id: Mapped[int] = mapped_column(
        ForeignKey("llm_calls.id", ondelete="CASCADE"), unique=True
    )
    # the answer's time
    call_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    model: Mapped[str] = mapped_column(Text)
    prompt_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # claimed, retry, scored, failed, skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_by: Mapped[str] = mapped_column(Text, default="", server_default="")
    claimed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    groundedness: Mapped[Decimal | None] = mapped_column(Numeric(5, 4), nullable=True)
    relevance: Mapped[Decimal | None] = mapped_column(Numeric(5, 4), nullable=True)
    citation_validity: Mapped[Decimal | None] = mapped_column(Numeric(5, 4), nullable=True)
    dont_know: Mapped[bool | None] = mapped_column(nullable=True)
    judge_model: Mapped[str | None] = mapped_column(Text, nullable=True)
    judge_prompt_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    judge_cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6), default=0, server_default="0")
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (Index("ix_quality_scores_status", "status", "claimed_at"),)
