"""Models and arms side by side on the dashboard: the numbers an upgrade is decided on
(docs/routing.md, "Upgrading a model or a prompt").

One row per (arm, model, prompt version) of the chat answers over a range: answers, cost
per answer, TTFT and latency p50 of the answers the model made (cache hits and the local
"I don't know" excluded: they never reached it), error rate, "I don't know" rate and
thumbs-down rate. Read from the call ledger through its ``created_at`` index, joined to
each answer's message (by trace id) and its feedback.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import utcnow

# An answer is "I don't know" when it was answered locally (no_context), refused by the
# model, or says so: the eval suite's test (evals/metrics.py, DONT_KNOW).
_MODELS = text(
    "WITH answers AS (SELECT coalesce(c.arm, 'main') AS arm, c.model, "
    "coalesce(c.prompt_version, '') AS prompt_version, c.status, c.cost_usd, c.cache_hit, "
    "c.ttft_ms, c.latency_ms, m.content, "
    "EXISTS (SELECT 1 FROM feedback f WHERE f.message_id = m.id AND f.rating < 0) AS down "
    "FROM llm_calls c LEFT JOIN messages m ON m.trace_id = c.trace_id AND m.role = 'assistant' "
    "WHERE c.created_at >= :since AND c.feature = 'chat' AND c.admission = 'allowed') "
    "SELECT arm, model, prompt_version, count(*) AS answers, "
    "coalesce(sum(cost_usd), 0) AS cost_usd, count(*) FILTER (WHERE cache_hit) AS cache_hits, "
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY ttft_ms) "
    "FILTER (WHERE NOT cache_hit AND status <> 'no_context') AS ttft_p50_ms, "
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) "
    "FILTER (WHERE NOT cache_hit AND status <> 'no_context') AS latency_p50_ms, "
    "count(*) FILTER (WHERE status LIKE 'error:%') AS errors, "
    "count(*) FILTER (WHERE status IN ('no_context', 'refused') "
    "OR content ~* '\\mI don''?t know\\M') AS dont_know, "
    "count(*) FILTER (WHERE down) AS thumbs_down "
    "FROM answers GROUP BY arm, model, prompt_version ORDER BY answers DESC, arm, model"
)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


async def compare_models(session: AsyncSession, *, days: int) -> list[dict[str, Any]]:
    """Over the last `days`, one dict per (arm, model, prompt version), most answers first:
    ``answers``, ``cost_usd`` and ``cost_per_answer_usd`` (US dollars, strings),
    ``cache_hits``, ``ttft_p50_ms`` and ``latency_p50_ms`` (None without a live answer),
    and ``error_rate``, ``dont_know_rate``, ``thumbs_down_rate`` (0..1, over answers)."""
    rows = await session.execute(_MODELS, {"since": utcnow() - timedelta(days=days)})
    result = []
    for r in rows:
        answers, cost = int(r.answers), Decimal(r.cost_usd)
        result.append(
            {
                "arm": r.arm,
                "model": r.model,
                "prompt_version": r.prompt_version,
                "answers": answers,
                "cost_usd": str(cost),
                "cost_per_answer_usd": str((cost / answers).quantize(Decimal("0.000001"))),
                "cache_hits": int(r.cache_hits),
                "ttft_p50_ms": None if r.ttft_p50_ms is None else round(float(r.ttft_p50_ms), 1),
                "latency_p50_ms": None
                if r.latency_p50_ms is None
                else round(float(r.latency_p50_ms), 1),
                "error_rate": _rate(int(r.errors), answers),
                "dont_know_rate": _rate(int(r.dont_know), answers),
                "thumbs_down": int(r.thumbs_down),
                "thumbs_down_rate": _rate(int(r.thumbs_down), answers),
            }
        )
    return result
