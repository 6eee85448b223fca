"""History summarisation: older turns are folded into a running summary stored with the
conversation, so a long conversation stays inside its context budget without silently
losing what was said.

When the turns after the summary pass ``CONTEXT_SUMMARY_THRESHOLD`` of the history share
(docs/context.md), or number more than ``HISTORY_MESSAGES``, all but the newest turns are
folded: the model rewrites the summary with them (prompt ``summary-v1``, feature
``summary``, output limited to ``LLM_MAX_TOKENS_SUMMARY`` and the summary share). The call
is reserved, settled and recorded like an answer. If it fails, the summary is kept as it
was and the turns that no longer fit are dropped oldest first.
"""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import aclosing
from dataclasses import dataclass
from decimal import Decimal

import anyio
from sqlalchemy import update

from app.calls import commit_call, record_call
from app.caps import budget as reservations
from app.db import session_scope
from app.llm.client import Finished, TextDelta, UpstreamError
from app.models import Conversation
from app.rag.context_budget import ContextBudget, history_tokens
from app.rag.prompt import system_prompt
from app.services import Services
from app.tokens import count_message_tokens, count_tokens

SUMMARY_PROMPT_VERSION = "summary-v1"
SUMMARY_FEATURE = "summary"
MAX_UNSUMMARISED = 200  # messages loaded after the summary: a backstop, never reached
log = logging.getLogger("ragship.summary")

Turn = tuple[int, str, str]  # (message id, role, content)


def turns_to_fold(
    turns: list[Turn], *, budget: ContextBudget, threshold: float, max_messages: int
) -> int:
    """How many of the oldest `turns` to fold into the summary: 0 while they stay under
    `threshold` (0..1) of the history share and number at most `max_messages`; else all
    but the newest ones that fit in half the share (at most half of `max_messages`),
    so that the next fold is a few turns away."""
    as_messages = [{"role": r, "content": c} for _, r, c in turns]
    if history_tokens(as_messages) <= threshold * budget.history and len(turns) <= max_messages:
        return 0
    keep, used = 0, 0
    for message in reversed(as_messages):
        used += history_tokens([message])
        if used > budget.history / 2 or keep >= max(max_messages // 2, 1):
            break
        keep += 1
    fold = len(turns) - keep
    while fold < len(turns) and turns[fold][1] != "user":  # the kept part starts with a question
        fold += 1
    return fold


def summary_messages(summary: str | None, older: list[Turn]) -> list[dict[str, str]]:
    """The summary request: the summary prompt, then the summary so far and the turns."""
    lines = [
        f"{'User' if r == 'user' else 'Assistant'}: {' '.join(c.split())}" for _, r, c in older
    ]
    body = f"Summary so far:\n{summary or ''}\n\nTurns:\n" + "\n".join(lines)
    return [
        {"role": "system", "content": system_prompt(SUMMARY_PROMPT_VERSION)},
        {"role": "user", "content": body},
    ]


@dataclass
class _Result:
    text: str = ""
    finished: Finished | None = None
    ttft_ms: float | None = None
    status: str = "ok"


async def fold(
    services: Services,
    *,
    user_id: uuid.UUID,
    conversation_id: uuid.UUID,
    trace_id: str,
    summary: str | None,
    older: list[Turn],
    max_tokens: int,
) -> str | None:
    """Fold `older` into `summary` with one model call; store the new summary with the
    conversation and return it, or None when the call failed (recorded as an error).
    Raises `CapRefused` when the reservation for the call is refused."""
    messages = summary_messages(summary, older)
    prompt_tokens = count_message_tokens(messages)
    amount = services.prices.max_cost(
        services.llm.models, input_tokens=prompt_tokens, max_output_tokens=max_tokens
    )
    # The same gate as an answer's: the kill switch and the per-request ceiling apply.
    reservation = await reservations.reserve(
        services.sessions,
        services.settings,
        user_id=user_id,
        amount=amount,
        kill_switch=True,
        ceiling=services.settings.max_request_cost_usd,
    )
    started = time.perf_counter()
    result = _Result()

    async def settle() -> bool:
        """Settle the reservation at the call's cost and record it; store the summary."""
        finished = result.finished
        model = finished.model if finished else services.llm.model
        price = services.prices[model]
        ok = result.status == "ok" and bool(result.text.strip())
        input_tokens = finished.input_tokens if finished and finished.input_tokens else 0
        if not input_tokens and result.text:
            input_tokens = prompt_tokens
        output_tokens = (
            finished.output_tokens
            if finished and finished.output_tokens is not None
            else count_tokens(result.text)
        )
        cost = price.cost(input_tokens=input_tokens, output_tokens=output_tokens)
        async with session_scope(services.sessions) as session:
            if ok:  # the conversation's row before the counters': the lock order (docs/caps.md)
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation_id)
                    .values(summary=result.text.strip(), summary_through=older[-1][0])
                )
            closed = await reservations.close(session, reservation_id=reservation.id)
            settled = closed is not None
            call = await record_call(
                session,
                rollups=False,  # sent with the commit, after the counters (commit_call)
                user_id=user_id,
                conversation_id=conversation_id,
                model=model,
                status=result.status if ok or result.status != "ok" else "refused",
                feature=SUMMARY_FEATURE,
                prompt_version=SUMMARY_PROMPT_VERSION,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost if settled else Decimal(0),  # a late settle was charged already
                reserved_usd=reservation.amount,
                ttft_ms=result.ttft_ms,
                latency_ms=(time.perf_counter() - started) * 1000,
                reservation_id=reservation.id if settled else None,
                trace_id=trace_id,
                attempts=finished.attempts if finished else 1,
                provider=services.llm.provider,
                price_source=price.source,
            )
            await commit_call(session, call, closed, cost=cost)
            return ok

    try:
        stream = services.llm.stream_chat(messages, max_tokens=max_tokens, temperature=0.0)
        async with aclosing(stream) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    result.ttft_ms = result.ttft_ms or (time.perf_counter() - started) * 1000
                    result.text += event.text
                else:
                    result.finished = event
    except UpstreamError as err:
        result.status = f"error:{err.kind}"
        log.warning("summary of conversation %s failed: %s", conversation_id, err.kind)
    except BaseException:
        # Cancelled (client gone, shutdown) or failed otherwise: settle what was used, shielded
        # from the cancellation, so the reservation is not left to the expiry sweep.
        result.status = "cancelled"
        with anyio.CancelScope(shield=True):
            await settle()
        raise
    return result.text.strip() if await settle() else None
