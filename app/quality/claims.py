"""Which sampled answers a replica scores: claimed in the database, so several replicas
share the work and no answer is scored twice.

Sampling is a pure function of the call's id (a hash of it, below ``QUALITY_SAMPLE_RATE``
of its range), decided here in the background, never on the request path: every replica
agrees which answers are sampled without writing anything while answering. Only answers
the call log holds the text of are candidates (CONTENT_LOGGING ``full`` or ``redacted``,
within RETENTION_DAYS, not erased with their conversation), model answers only (status
``ok``, not a cache hit, not answered locally), from the last ``LOOKBACK``.

A claim is a row in ``quality_scores`` inserted with ``ON CONFLICT (call_id) DO NOTHING``:
of two replicas inserting the same call, one gets the row and the other gets nothing back.
A claim whose scoring failed (``retry``) or was abandoned (a replica died mid-score,
``claimed``) is taken again after ``QUALITY_RETRY_AFTER_S``, with ``FOR UPDATE SKIP
LOCKED``, at most ``MAX_ATTEMPTS`` times in all.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import utcnow

LOOKBACK = timedelta(hours=24)  # older answers are never sampled (turning sampling on)
MAX_ATTEMPTS = 3
SAMPLE_BUCKETS = 10_000  # the sample rate's resolution: 0.01 %

_NEW = text(
    "INSERT INTO quality_scores (call_id, call_at, model, prompt_version, status, attempts, "
    "claimed_by, claimed_at) "
    "SELECT c.id, c.created_at, c.model, c.prompt_version, 'claimed', 1, :me, :now "
    "FROM llm_calls c "
    "WHERE c.feature = 'chat' AND c.admission = 'allowed' AND c.status = 'ok' "
    "AND NOT c.cache_hit AND c.question IS NOT NULL AND c.answer IS NOT NULL "
    "AND c.output_tokens > 0 AND c.created_at >= :since "
    "AND (hashtext(c.id::text)::bigint & 2147483647) % :buckets < :sampled "
    "AND NOT EXISTS (SELECT 1 FROM quality_scores q WHERE q.call_id = c.id) "
    "ORDER BY c.id LIMIT :n "
    "ON CONFLICT (call_id) DO NOTHING RETURNING call_id"
)
_AGAIN = text(
    "UPDATE quality_scores SET status = 'claimed', attempts = attempts + 1, "
    "claimed_by = :me, claimed_at = :now "
    "WHERE id IN (SELECT id FROM quality_scores WHERE status IN ('claimed', 'retry') "
    "AND claimed_at < :stale AND attempts < :max ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED) "
    "RETURNING call_id"
)
_GIVE_UP = text(
    "UPDATE quality_scores SET status = 'failed' "
    "WHERE status IN ('claimed', 'retry') AND claimed_at < :stale AND attempts >= :max"
)


def sampled_buckets(rate: float) -> int:
    """How many of the ``SAMPLE_BUCKETS`` hash buckets are sampled at `rate` (0..1)."""
    return round(rate * SAMPLE_BUCKETS)


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    *,
    me: str,
    rate: float,
    limit: int,
    retry_after_s: float,
) -> list[int]:
    """Claim up to `limit` calls for replica `me`: first those to retry, then new sampled
    answers (rate 0..1). Returns their llm_calls ids, oldest first; one short transaction."""
    now = utcnow()
    stale = now - timedelta(seconds=retry_after_s)
    async with sessions() as session, session.begin():
        await session.execute(_GIVE_UP, {"stale": stale, "max": MAX_ATTEMPTS})
        again = await session.execute(
            _AGAIN, {"me": me, "now": now, "stale": stale, "max": MAX_ATTEMPTS, "n": limit}
        )
        ids = [r.call_id for r in again]
        if len(ids) < limit and rate > 0:
            params = {
                "me": me,
                "now": now,
                "since": now - LOOKBACK,
                "buckets": SAMPLE_BUCKETS,
                "sampled": sampled_buckets(rate),
                "n": limit - len(ids),
            }
            ids += [r.call_id for r in await session.execute(_NEW, params)]
    return sorted(ids)
