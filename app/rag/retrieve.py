"""Hybrid retrieval: pgvector cosine similarity and PostgreSQL full text, fused by reciprocal rank.

Every value is a bound parameter. A passage must also clear a minimum cosine similarity,
so an out-of-scope question retrieves nothing rather than the least-bad chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import EMBEDDING_DIM

_HYBRID_SQL = text(
    """
    WITH semantic AS (
        SELECT id, ROW_NUMBER() OVER (ORDER BY embedding <=> :embedding) AS rank
        FROM chunks
        ORDER BY embedding <=> :embedding
        LIMIT :candidates
    ),
    keyword AS (
        SELECT id, ROW_NUMBER() OVER (ORDER BY ts_rank_cd(tsv, query) DESC) AS rank
        FROM chunks, websearch_to_tsquery('english', :query) AS query
        WHERE tsv @@ query
        ORDER BY ts_rank_cd(tsv, query) DESC
        LIMIT :candidates
    ),
    fused AS (
        SELECT COALESCE(s.id, k.id) AS id,
               COALESCE(1.0 / (:rrf_k + s.rank), 0) + COALESCE(1.0 / (:rrf_k + k.rank), 0) AS score
        FROM semantic s FULL OUTER JOIN keyword k ON s.id = k.id
    )
    SELECT c.id, c.document_id, d.source, d.title, c.heading_path, c.anchor, c.text,
           f.score, 1 - (c.embedding <=> :embedding) AS similarity
    FROM fused f
    JOIN chunks c ON c.id = f.id
    JOIN documents d ON d.id = c.document_id
    WHERE 1 - (c.embedding <=> :embedding) >= :min_similarity
    ORDER BY f.score DESC, c.id
    LIMIT :top_k
    """
).bindparams(bindparam("embedding", type_=Vector(EMBEDDING_DIM)))


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: int
    source: str
    title: str
    heading_path: str
    anchor: str
    text: str
    score: float
    similarity: float

    @property
    def url(self) -> str:
        return f"/sources/{self.document_id}#{self.anchor}"


async def hybrid_search(
    session: AsyncSession,
    *,
    query: str,
    embedding: list[float],
    top_k: int,
    candidates: int,
    min_similarity: float,
    rrf_k: int,
) -> list[Passage]:
    rows = await session.execute(
        _HYBRID_SQL,
        {
            "embedding": embedding,
            "query": query,
            "candidates": max(candidates, top_k),
            "min_similarity": min_similarity,
            "rrf_k": rrf_k,
            "top_k": top_k,
        },
    )
    return [
        Passage(
            chunk_id=r.id,
            document_id=r.document_id,
            source=r.source,
            title=r.title,
            heading_path=r.heading_path,
            anchor=r.anchor,
            text=r.text,
            score=float(r.score),
            similarity=float(r.similarity),
        )
        for r in rows
    ]
