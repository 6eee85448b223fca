"""The prompt-size alert: the last hour's p95 prompt, in tokens, near the input budget.

Prompts are sized to the context budget before they are sent (app/rag/context_budget.py),
so one that nears it is trimmed: passages dropped, history folded. When the p95 of an
hour's answer prompts reaches ``ALERT_PROMPT_SIZE_SHARE`` of the input budget, answers
are being squeezed often enough to look at (a longer-window model, smaller chunks).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import utcnow
from app.settings import Settings

_P95 = text(
    "SELECT count(*) AS calls, "
    "percentile_cont(0.95) WITHIN GROUP (ORDER BY input_tokens) AS p95 FROM llm_calls "
    "WHERE created_at >= :since AND feature = 'chat' AND admission = 'allowed' "
    "AND input_tokens > 0"
)


async def prompt_size_alert(
    session: AsyncSession, settings: Settings, *, window: int
) -> tuple[str, str, str] | None:
    """(rule, subject, text) when the last hour's p95 answer prompt (tokens, as charged)
    is at least ``ALERT_PROMPT_SIZE_SHARE`` of the input budget of a `window`-token model
    (window less ``LLM_MAX_TOKENS``), over at least ``ALERT_MIN_CALLS`` calls; else None."""
    row = (await session.execute(_P95, {"since": utcnow() - timedelta(hours=1)})).one()
    budget = max(window - settings.llm_max_tokens, 1)
    if row.calls < settings.alert_min_calls or row.p95 is None:
        return None
    if row.p95 < settings.alert_prompt_size_share * budget:
        return None
    return (
        "prompt_size",
        "Prompts near the context window",
        f"p95 prompt {row.p95:.0f} tokens over the last hour ({row.calls} answers), "
        f"{row.p95 / budget:.0%} of the {budget}-token input budget (alert at "
        f"{settings.alert_prompt_size_share:.0%}): passages and history are being trimmed.",
    )
