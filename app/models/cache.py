"""Cached answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from pgvector.sqlalchemy import Vector
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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import EMBEDDING_DIM, Base, utcnow


class ResponseCacheEntry(Base):
    """A first-turn answer served again at $0 (app/cache/responses.py, docs/context.md)."""

    __tablename__ = "response_cache"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    corpus_version: Mapped[str] = mapped_column(String(32))
    prompt_version: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(Text)
    arm: Mapped[str] = mapped_column(String(32), server_default="main")  # routing arm
    question_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the normalised question
    embedding: Mapped[list[float]] = mapped_column(Vector(EMBEDDING_DIM))
    answer: Mapped[str] = mapped_column(Text)
    passages: Mapped[list[dict[str, object]]] = mapped_column(JSONB)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 6))  # what the live answer cost
    hits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The conversation it was first given in: deleting that conversation deletes the entry.
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), nullable=True, index=True
    )

    __table_args__ = (
        Index(
            "ix_response_cache_key", "corpus_version", "prompt_version", "model", "question_hash"
        ),
        Index(  # method and operator class: tests/test_schema_drift.py compares
            "ix_response_cache_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
    )
