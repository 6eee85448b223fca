"""Hybrid retrieval: pgvector cosine similarity and PostgreSQL full text, fused by reciprocal rank.

The keyword side matches chunks holding *any* of the question's lexemes (the question's
`plainto_tsquery` with its ANDs turned into ORs), so a question phrased as a sentence
still gets keyword candidates; chunks are ranked by `ts_rank`, where a lexeme in the
title or heading path (weight A) counts twice one in the text (weight D). Not more: every
chunk of a page shares its title, so a heavier title ranks all of a page's sections above
the one section whose text answers (measured in docs/retrieval.md).

Every value is a bound parameter. A passage must also clear a minimum cosine similarity,
so an out-of-scope question retrieves nothing rather than the least-bad chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgvector.sqlalchemy import Vector
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import EMBEDDING_DIM

# Chunks holding any of the question's lexemes, best first: the keyword side of the search.
# ts_rank's weights are {D, C, B, A}: text D 0.1, title and heading path A 0.2.
_KEYWORD = """
    SELECT id, ROW_NUMBER() OVER (ORDER BY score DESC, id) AS rank
    FROM (
        SELECT id, ts_rank('{0.1, 0.2, 0.4, 0.2}', tsv, query, 1) AS score
        FROM chunks,
             (SELECT replace(plainto_tsquery('english', :query)::text, ' & ', ' | ')::tsquery
              AS query) AS terms
        WHERE tsv @@ query
        ORDER BY score DESC, id
        LIMIT :candidates
    ) AS matched
"""
_KEYWORD_SQL = text(f"SELECT id FROM ({_KEYWORD}) AS keyword ORDER BY rank")  # noqa: S608

_HYBRID_SQL = text(
    f"""
    WITH semantic AS (
        SELECT id, ROW_NUMBER() OVER (ORDER BY embedding <=> :embedding) AS rank
        FROM chunks
        ORDER BY embedding <=> :embedding
        LIMIT :candidates
    ),
    keyword AS ({_KEYWORD}),
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
    """  # noqa: S608 (only the constant keyword fragment is formatted in; values are bound)
).bindparams(bindparam("embedding", type_=Vector(EMBEDDING_DIM)))


async def keyword_search(session: AsyncSession, *, query: str, candidates: int) -> list[int]:
    """Ids of the chunks the keyword side ranks for `query`, best first (at most
    `candidates`); empty when the question has no lexeme (only stop words)."""
    rows = await session.execute(_KEYWORD_SQL, {"query": query, "candidates": candidates})
    return [r.id for r in rows]


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
