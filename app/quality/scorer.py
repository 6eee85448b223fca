"""Score one sampled answer: the cheap checks (citation validity, "I don't know"), then the
judge (groundedness, relevance), in the background, never on the request path.

The judge call is a model call like any other: priced (the judge model's price, resolved
at start), reserved against the global daily cap and the monthly budget (no user: it is
the service's own call; the kill switch applies), settled at its real cost and recorded
in the call log as feature ``judge`` with the judge prompt's version and the scored
answer's trace id. An answer that says "I don't know" is not sent to the judge (nothing to
ground, $0): it counts toward the "I don't know" rate only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from decimal import Decimal

import anyio
import openai
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.calls import commit_call, record_call
from app.caps import budget as reservations
from app.db import session_scope
from app.llm.pricing import ModelPrice
from app.models import utcnow
from app.quality.checks import citation_validity, says_dont_know
from app.quality.judge import JUDGE_FEATURE, JUDGE_PROMPT_VERSION, judge_messages, parse_verdict
from app.quality.sampled import Sampled
from app.services import Services
from app.tokens import count_message_tokens, count_tokens

log = logging.getLogger("ragship.quality")

_DONE = text(
    "UPDATE quality_scores SET status = :status, scored_at = :at, groundedness = :g, "
    "relevance = :r, citation_validity = :cv, dont_know = :dk, judge_model = :jm, "
    "judge_prompt_version = :jv, judge_cost_usd = judge_cost_usd + :cost, detail = :detail, "
    "claimed_at = :now WHERE call_id = :id"
)


@dataclass
class _Judged:
    verdict: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    status: str = "ok"
    ttft_ms: float | None = None


async def score(services: Services, price: ModelPrice, sampled: Sampled) -> str:
    """Score `sampled` and store the result; returns the row's new status: ``scored``, or
    ``retry`` when the judge failed or gave no verdict (retried after
    QUALITY_RETRY_AFTER_S). Raises `CapRefused` when the judge call's reservation is
    refused (the caller releases the claim)."""
    cheap: dict[str, object] = {
        "cv": citation_validity(sampled.answer, sources=len(sampled.passages)),
        "dk": says_dont_know(sampled.answer),
    }
    if cheap["dk"]:
        async with session_scope(services.sessions) as session:
            await _store(session, sampled, "scored", cheap, None, Decimal(0), "")
        return "scored"
    settings = services.settings
    messages = judge_messages(sampled.question, sampled.passages, sampled.answer)
    prompt_tokens = count_message_tokens(messages)
    amount = price.max_cost(
        input_tokens=prompt_tokens, max_output_tokens=settings.llm_max_tokens_judge
    )
    reservation = await reservations.reserve(
        services.sessions, settings, user_id=None, amount=amount, kill_switch=True
    )
    started = time.perf_counter()
    judged = _Judged()

    async def settle() -> str:
        scores = parse_verdict(judged.verdict) if judged.status == "ok" else None
        cost = price.cost(input_tokens=judged.input_tokens, output_tokens=judged.output_tokens)
        status = "scored" if scores else "retry"
        detail = "" if scores else (judged.status if judged.status != "ok" else "no verdict")
        async with session_scope(services.sessions) as session:
            closed = await reservations.close(session, reservation_id=reservation.id)
            charged = cost if closed is not None else Decimal(0)  # a late settle: charged already
            call = await record_call(
                session,
                rollups=False,  # sent with the commit, after the counters (commit_call)
                user_id=None,
                model=price.model,
                status=judged.status if judged.status != "ok" or scores else "bad_verdict",
                feature=JUDGE_FEATURE,
                prompt_version=JUDGE_PROMPT_VERSION,
                input_tokens=judged.input_tokens,
                output_tokens=judged.output_tokens,
                cost_usd=charged,
                reserved_usd=reservation.amount,
                ttft_ms=judged.ttft_ms,
                latency_ms=(time.perf_counter() - started) * 1000,
                reservation_id=reservation.id if closed is not None else None,
                trace_id=sampled.trace_id,
                provider=services.llm.provider,
                price_source=price.source,
            )
            graded = (price.model, scores["groundedness"], scores["relevance"]) if scores else None
            await _store(session, sampled, status, cheap, graded, charged, detail)
            await commit_call(session, call, closed, cost=cost)
        return status

    try:
        await _ask(services, price.model, messages, judged)
    except BaseException:
        # Cancelled (shutdown): settle what was used, shielded; the claim is retried later.
        judged.status = "cancelled"
        with anyio.CancelScope(shield=True):
            await settle()
        raise
    return await settle()


async def _ask(
    services: Services, model: str, messages: list[dict[str, str]], judged: _Judged
) -> None:
    """One judge call (not streamed, no retries: a failure is retried by a later round)."""
    settings = services.settings
    started = time.perf_counter()
    client = services.llm.openai.with_options(timeout=settings.quality_judge_timeout_s)
    try:
        result = await asyncio.wait_for(
            client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                max_completion_tokens=settings.llm_max_tokens_judge,
                temperature=0,
            ),
            timeout=settings.quality_judge_timeout_s,
        )
    except (TimeoutError, openai.APITimeoutError):
        judged.status = "error:timeout"
        log.warning("judge call on %s timed out", model)
        return
    except openai.OpenAIError as err:
        judged.status = "error:upstream"
        log.warning("judge call on %s failed: %s", model, type(err).__name__)
        return
    judged.ttft_ms = (time.perf_counter() - started) * 1000
    judged.verdict = (result.choices[0].message.content or "") if result.choices else ""
    if result.usage:
        judged.input_tokens = result.usage.prompt_tokens
        judged.output_tokens = result.usage.completion_tokens
    else:  # counted locally: a call that answered is charged
        judged.input_tokens = count_message_tokens(messages)
        judged.output_tokens = count_tokens(judged.verdict)


async def _store(
    session: AsyncSession,
    sampled: Sampled,
    status: str,
    cheap: dict[str, object],
    judge: tuple[str, float, float] | None,
    cost: Decimal,
    detail: str,
) -> None:
    """Write the row's outcome; `judge` is (judge model, groundedness, relevance)."""
    now = utcnow()
    await session.execute(
        _DONE,
        {
            "status": status,
            "now": now,
            "at": now if status == "scored" else None,
            "g": judge[1] if judge else None,
            "r": judge[2] if judge else None,
            "cv": cheap["cv"],
            "dk": cheap["dk"],
            "jm": judge[0] if judge else None,
            "jv": JUDGE_PROMPT_VERSION if judge else None,
            "cost": cost,
            "detail": detail[:300],
            "id": sampled.call_id,
        },
    )
