"""Documents and their chunks: the retrieval corpus."""

from __future__ import annotations

from datetime import datetime

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    DDL,
    REAL,
    BigInteger,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import EMBEDDING_DIM, Base, utcnow


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(Text, unique=True)
    title: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    embedding_model: Mapped[str] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Chunk(Base):
    __tablename__ = "chunks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text, server_default="")  # the document's, for search
    heading_path: Mapped[str] = mapped_column(Text)
    anchor: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    embedding: Mapped[list[float]] = mapped_column(Vector(EMBEDDING_DIM))
    # Nullable as migration 0001 made it (never NULL in practice: its inputs are NOT NULL).
    tsv: Mapped[str | None] = mapped_column(
        TSVECTOR,
        Computed(
            "setweight(to_tsvector('english', title || ' ' || heading_path), 'A') "
            "|| setweight(to_tsvector('english', text), 'D')",
            persisted=True,
        ),
        nullable=True,
    )

    __table_args__ = (
        Index("ix_chunks_document_id", "document_id"),
        Index(  # method, operator class, options: tests/test_schema_drift.py compares
            "ix_chunks_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 128},  # migration 0021
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index("ix_chunks_tsv", "tsv", postgresql_using="gin"),
    )


# The tsvector kept in the row (migration 0025, docs/retrieval.md); SQLAlchemy has no
# column option for a column's storage.
event.listen(
    Chunk.__table__, "after_create", DDL("ALTER TABLE chunks ALTER COLUMN tsv SET STORAGE MAIN")
)


class CorpusDigest(Base):
    """The corpus version in SHARDS rows (migration 0023): the XOR over the rows of `hi`
    and `lo` is the XOR of every document's md5(source:content_hash:embedding_model).
    Written only by the triggers on `documents`; read by app/cache/responses.py."""

    __tablename__ = "corpus_digest"

    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    hi: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    lo: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class CommonLexeme(Base):
    """A lexeme in more than a few of the chunks, with its share of them (0..1), as the last
    ingest's ANALYZE found (migration 0024): the keyword side leaves the common ones out of
    its selective tier (app/rag/retrieve.py). Written only by
    ragship_refresh_common_lexemes(), which ingest calls."""

    __tablename__ = "common_lexemes"

    word: Mapped[str] = mapped_column(Text, primary_key=True)
    share: Mapped[float] = mapped_column(REAL)
