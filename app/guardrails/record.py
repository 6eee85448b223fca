"""Every guardrail trigger is a row in `guardrail_triggers`, written in the caller's
transaction, with its excerpt kept under the content-logging policy (CONTENT_LOGGING)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from app.guardrails.verdict import Verdict
from app.models import GuardrailTrigger, utcnow
from app.observability.redact import for_call_log


def record_triggers(
    session: AsyncSession,
    verdicts: Iterable[tuple[str, Verdict]],
    *,
    user_id: uuid.UUID | None,
    trace_id: str | None,
    policy: str,
) -> int:
    """Add one row per (layer, verdict); returns how many. The caller commits."""
    rows = [
        GuardrailTrigger(
            created_at=utcnow(),
            user_id=user_id,
            trace_id=trace_id,
            layer=layer,
            rule=verdict.rule,
            action=verdict.action,
            excerpt=for_call_log(verdict.excerpt, policy=policy),
        )
        for layer, verdict in verdicts
    ]
    session.add_all(rows)
    return len(rows)
