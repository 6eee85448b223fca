"""The response cache: a first-turn question asked again is answered from PostgreSQL.

A hit is either *exact* (the same question once normalised: case, spacing and trailing
punctuation ignored) or *semantic* (pgvector cosine similarity of the question embeddings
at least ``RESPONSE_CACHE_SIMILARITY``). Entries are keyed by the corpus version, the
prompt version, the model and the routing arm, so an ingest that changes any document, a
new prompt or a new model never serves an old answer, and an answer made on the canary
side is never served on the main side, nor the other way (docs/routing.md). Only first
turns are cached and served: a follow-up depends on its conversation. The question is
stored as a hash, never as text.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Runner
from app.models import ResponseCacheEntry, utcnow
from app.rag.retrieve import Passage, QueryVector, vector_text

# The corpus version changes whenever a document is added, changed or removed (its content
# hash) or re-embedded with another model: the XOR of every document's md5, kept up to date
# by the triggers of migration 0023 in a few rows. Computed here from all documents, it cost
# 24 ms a first-turn question at 10,000 documents (`python -m bench corpus_version`).
_VERSION = "lpad(to_hex(bit_xor(hi)), 16, '0') || lpad(to_hex(bit_xor(lo)), 16, '0')"
_CORPUS_VERSION = text(f"SELECT {_VERSION} FROM corpus_digest")  # noqa: S608 (a constant)
# The corpus version, and the best entry under it (or NULLs): one statement, so that the
# lookup can leave in the round trip of the search it may make unnecessary (`lookup_statement`).
_LOOKUP = text(
    f"""
    WITH v AS (SELECT {_VERSION} AS version FROM corpus_digest)
    SELECT v.version, e.id, e.answer, e.passages, e.cost_usd, e.exact, e.similarity
    FROM v LEFT JOIN LATERAL (
        SELECT id, answer, passages, cost_usd, question_hash = :qh AS exact,
               1 - (embedding <=> :embedding) AS similarity
        FROM response_cache
        WHERE corpus_version = v.version AND prompt_version = :pv AND model = :model
          AND arm = :arm AND expires_at > now()
          AND (question_hash = :qh OR 1 - (embedding <=> :embedding) >= :threshold)
        ORDER BY question_hash = :qh DESC, embedding <=> :embedding
        LIMIT 1
    ) AS e ON true
    """  # noqa: S608 (only the constant _VERSION is formatted in; values are bound)
)
_HIT = text("UPDATE response_cache SET hits = hits + 1 WHERE id = :id")
_PRUNE = text("DELETE FROM response_cache WHERE expires_at <= now() OR corpus_version <> :cv")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class CacheKey:
    corpus_version: str
    prompt_version: str
    model: str
    arm: str = "main"  # the routing arm (app/llm/routing.py): canary and main never share


@dataclass(frozen=True)
class CachedAnswer:
    answer: str
    passages: list[Passage]
    live_cost_usd: Decimal  # what the answer cost when it was made: the saving per hit
    exact: bool
    similarity: float


def normalise(question: str) -> str:
    """Lower case, single spaces, no trailing punctuation: "How do I X?" == "how do i x"."""
    return _SPACES.sub(" ", question.lower()).strip().rstrip("?!. ")


def question_hash(question: str) -> str:
    return hashlib.sha256(normalise(question).encode()).hexdigest()


async def corpus_version(session: AsyncSession) -> str:
    """The corpus version: 32 hex digits, a digest of every document's source, content hash
    and embedding model (the XOR of their md5s; all zeros for an empty corpus). One read
    of `corpus_digest`'s 16 rows, whatever the corpus's size."""
    return str((await session.execute(_CORPUS_VERSION)).scalar_one())


@dataclass(frozen=True)
class CacheKeyParts:
    """A cache key less its corpus version, which the lookup reads with the entry."""

    prompt_version: str
    model: str
    arm: str = "main"

    def with_version(self, corpus_version: str) -> CacheKey:
        return CacheKey(corpus_version, self.prompt_version, self.model, self.arm)


def lookup_statement(
    parts: CacheKeyParts, *, question: str, embedding: QueryVector, threshold: float
) -> tuple[TextClause, dict[str, Any]]:
    """The lookup as one statement for `app.db.pipelined`, whose one row `looked_up` reads:
    the corpus version, and the cached answer for `question` under it (exact match first,
    else the most similar question at cosine similarity >= `threshold`)."""
    return _LOOKUP, {
        "qh": question_hash(question),
        "embedding": vector_text(embedding),  # psycopg gets the values as they are
        "pv": parts.prompt_version,
        "model": parts.model,
        "arm": parts.arm,
        "threshold": threshold,
    }


async def looked_up(
    session: Runner, parts: CacheKeyParts, rows: list[tuple[Any, ...]] | None
) -> tuple[CacheKey, CachedAnswer | None]:
    """The key and the hit (None on a miss) from `lookup_statement`'s rows; a hit's counter
    is bumped on the same session or connection (one more statement, on hits only)."""
    if not rows:
        raise RuntimeError("the response cache's lookup returned no row")
    version, entry_id, answer, passages, cost_usd, exact, similarity = rows[0]
    key = parts.with_version(str(version))
    if entry_id is None:
        return key, None
    await session.execute(_HIT, {"id": entry_id})
    return key, CachedAnswer(
        answer=answer,
        passages=[Passage(**p) for p in passages],
        live_cost_usd=Decimal(cost_usd),
        exact=bool(exact),
        similarity=float(similarity),
    )


async def store(
    session: AsyncSession,
    *,
    key: CacheKey,
    conversation_id: uuid.UUID,
    question: str,
    embedding: list[float],
    answer: str,
    passages: list[Passage],
    cost_usd: Decimal,
    ttl_s: int,
) -> None:
    """Cache a live first-turn answer for `ttl_s` seconds, tied to the conversation it was
    given in (deleting that conversation deletes the entry), and drop entries that expired
    or belong to another corpus version (an ingest happened)."""
    await session.execute(_PRUNE, {"cv": key.corpus_version})
    now = utcnow()
    session.add(
        ResponseCacheEntry(
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
            corpus_version=key.corpus_version,
            prompt_version=key.prompt_version,
            model=key.model,
            arm=key.arm,
            question_hash=question_hash(question),
            conversation_id=conversation_id,
            embedding=embedding,
            answer=answer,
            passages=[_jsonable(p) for p in passages],
            cost_usd=cost_usd,
        )
    )


def _jsonable(passage: Passage) -> dict[str, Any]:
    return asdict(passage)
