"""The quality trend for the admin dashboard: judge scores and cheap checks of sampled
answers per hour or day, per model and prompt version."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import utcnow

Bucket = Literal["hour", "day"]
_TREND = text(
    "SELECT date_trunc(:bucket, call_at) AS at, model, prompt_version, "
    "count(*) FILTER (WHERE status = 'scored') AS scored, "
    "count(*) FILTER (WHERE status IN ('claimed', 'retry')) AS pending, "
    "count(*) FILTER (WHERE status = 'failed') AS failed, "
    "avg(groundedness) AS groundedness, avg(relevance) AS relevance, "
    "avg(citation_validity) AS citation_validity, "
    "avg(CASE WHEN dont_know THEN 1.0 ELSE 0.0 END) FILTER (WHERE dont_know IS NOT NULL) "
    "AS dont_know_rate, coalesce(sum(judge_cost_usd), 0) AS judge_cost_usd "
    "FROM quality_scores WHERE call_at >= :since AND status <> 'skipped' "
    "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)


def _num(value: object) -> float | None:
    return None if value is None else round(float(value), 4)  # type: ignore[arg-type]


async def quality_trend(
    session: AsyncSession, *, days: int, bucket: Bucket
) -> list[dict[str, Any]]:
    """One row per `bucket` (hour or day, UTC), model and prompt version over the last
    `days` days: {at (ISO 8601), model, prompt_version, scored, pending, failed,
    groundedness, relevance, citation_validity (means 0..1, null without scores),
    dont_know_rate (0..1), judge_cost_usd (string, USD)}, oldest first, by the time of the
    answers (not of their scoring)."""
    rows = await session.execute(
        _TREND, {"bucket": bucket, "since": utcnow() - timedelta(days=days)}
    )
    return [
        {
            "at": r.at.isoformat(),
            "model": r.model,
            "prompt_version": r.prompt_version,
            "scored": r.scored,
            "pending": r.pending,
            "failed": r.failed,
            "groundedness": _num(r.groundedness),
            "relevance": _num(r.relevance),
            "citation_validity": _num(r.citation_validity),
            "dont_know_rate": _num(r.dont_know_rate),
            "judge_cost_usd": str(r.judge_cost_usd),
        }
        for r in rows
    ]
