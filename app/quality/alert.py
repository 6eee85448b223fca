"""The ``quality_drop`` alert: a model's (and prompt version's) recent judge scores below
their own trailing baseline.

For each (model, prompt version) and each score (groundedness, relevance, citation
validity), the mean over the last ``ALERT_QUALITY_WINDOW_H`` hours of answers is compared
with the mean over the ``ALERT_QUALITY_BASELINE_H`` hours before that window; the rule
fires when it is lower by more than ``ALERT_QUALITY_DROP`` (a difference of means, scores
being 0..1), with at least ``ALERT_QUALITY_MIN_SCORES`` scores on each side. It runs with
the other alert rules (app/observability/alerts.py): one replica, one message per cooldown.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import utcnow
from app.settings import Settings

SCORES = ("groundedness", "relevance", "citation_validity")
_WINDOWS = text(
    "SELECT model, prompt_version, "
    "avg(groundedness) FILTER (WHERE call_at >= :recent) AS groundedness_recent, "
    "count(groundedness) FILTER (WHERE call_at >= :recent) AS groundedness_recent_n, "
    "avg(groundedness) FILTER (WHERE call_at < :recent) AS groundedness_base, "
    "count(groundedness) FILTER (WHERE call_at < :recent) AS groundedness_base_n, "
    "avg(relevance) FILTER (WHERE call_at >= :recent) AS relevance_recent, "
    "count(relevance) FILTER (WHERE call_at >= :recent) AS relevance_recent_n, "
    "avg(relevance) FILTER (WHERE call_at < :recent) AS relevance_base, "
    "count(relevance) FILTER (WHERE call_at < :recent) AS relevance_base_n, "
    "avg(citation_validity) FILTER (WHERE call_at >= :recent) AS citation_validity_recent, "
    "count(citation_validity) FILTER (WHERE call_at >= :recent) AS citation_validity_recent_n, "
    "avg(citation_validity) FILTER (WHERE call_at < :recent) AS citation_validity_base, "
    "count(citation_validity) FILTER (WHERE call_at < :recent) AS citation_validity_base_n "
    "FROM quality_scores WHERE status = 'scored' AND call_at >= :since "
    "GROUP BY model, prompt_version ORDER BY model, prompt_version"
)


async def quality_drops(session: AsyncSession, settings: Settings) -> list[str]:
    """One line per (model, prompt version, score) whose recent mean is more than
    ALERT_QUALITY_DROP below its baseline mean; empty when none is."""
    now = utcnow()
    recent = now - timedelta(hours=settings.alert_quality_window_h)
    since = recent - timedelta(hours=settings.alert_quality_baseline_h)
    rows = await session.execute(_WINDOWS, {"recent": recent, "since": since})
    lines = []
    least = settings.alert_quality_min_scores
    for row in rows.mappings():
        for m in SCORES:
            now_mean, now_n = row[f"{m}_recent"], row[f"{m}_recent_n"]
            base_mean, base_n = row[f"{m}_base"], row[f"{m}_base_n"]
            if now_n < least or base_n < least:
                continue
            if float(now_mean) < float(base_mean) - settings.alert_quality_drop:
                lines.append(
                    f"{m.replace('_', ' ')} of {row['model']} / {row['prompt_version']}: "
                    f"{float(now_mean):.2f} over the last {settings.alert_quality_window_h:g} h "
                    f"({now_n} scores) vs {float(base_mean):.2f} before ({base_n} scores)"
                )
    return lines


async def quality_drop_alert(
    session: AsyncSession, settings: Settings
) -> tuple[str, str, str] | None:
    """(rule, subject, text) when any score dropped (see `quality_drops`); else None."""
    lines = await quality_drops(session, settings)
    if not lines:
        return None
    return (
        "quality_drop",
        "Answer quality dropped",
        "; ".join(lines)
        + f" (alert at a drop of {settings.alert_quality_drop:g}). "
        + "See the quality section of the admin dashboard.",
    )
