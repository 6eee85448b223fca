"""The cost levers on the dashboard: how often the response cache answered and what it
saved, how many questions were answered "I don't know" without a model call.

Read from the call ledger through its ``created_at`` index (the rollups do not split
calls by ``cache_hit``); one aggregate over the range, so it stays one index range scan.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import utcnow

_LEVERS = text(
    "SELECT count(*) AS answered, count(*) FILTER (WHERE cache_hit) AS cache_hits, "
    "coalesce(sum(saved_usd), 0) AS saved_usd, "
    "count(*) FILTER (WHERE status = 'no_context') AS no_context, "
    "coalesce(sum(cost_usd), 0) AS cost_usd FROM llm_calls "
    "WHERE created_at >= :since AND feature = 'chat' AND admission = 'allowed'"
)


async def cost_levers(session: AsyncSession, *, days: int) -> dict[str, Any]:
    """Over the last `days`: chat answers, cache hits, hit rate (0..1, None without
    answers), US dollars saved by hits (the live cost of each answer served again), and
    answers given without a model call because nothing was retrieved."""
    row = (await session.execute(_LEVERS, {"since": utcnow() - timedelta(days=days)})).one()
    answered = int(row.answered)
    return {
        "answered": answered,
        "cache_hits": int(row.cache_hits),
        "cache_hit_rate": row.cache_hits / answered if answered else None,
        "cache_saved_usd": str(Decimal(row.saved_usd)),
        "no_context_answers": int(row.no_context),
        "cost_usd": str(Decimal(row.cost_usd)),
    }
