"""Settle a call: one transaction writes the answer, charges the reservation for what was
used, records the call in the ledger and the guardrail triggers, whatever way it ended."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.calls import commit_call, record_call
from app.caps.chain import Admission
from app.caps.spend import remaining_display, spend_today
from app.db import session_scope
from app.guardrails.record import record_triggers
from app.guardrails.verdict import RETRACTED_MESSAGE, Verdict
from app.llm.client import Finished
from app.observability.redact import for_call_log
from app.rag.retrieve import Passage
from app.services import Services
from app.settle_writes import Answer, write_answer
from app.tokens import count_tokens

if TYPE_CHECKING:
    from app.prepare import PreparedChat

log = logging.getLogger("ragship.chat")
# How long a settlement keeps asking for a database connection while the pool stays drained
# (each ask waits DB_POOL_TIMEOUT_S): the answer was streamed and its tokens are spent, so
# it is not given up at the first pool timeout, as a new request is (503).
SETTLE_PATIENCE_S = 300.0


def source_payload(passages: list[Passage]) -> list[dict[str, Any]]:
    """The `sources` event: one entry per passage, numbered from 1 as in the prompt."""
    return [
        {
            "n": n,
            "title": p.title,
            "section": p.heading_path,
            "source": p.source,
            "url": p.url,
            "score": round(p.score, 5),
        }
        for n, p in enumerate(passages, start=1)
    ]


@dataclass
class Outcome:
    """How a streamed answer ended, filled in as it streams."""

    parts: list[str] = field(default_factory=list)
    finished: Finished | None = None
    status: str = "cancelled"
    started: float = field(default_factory=time.perf_counter)
    ttft_ms: float | None = None
    model: str | None = None  # the model that streamed, when it is known
    retracted: Verdict | None = None  # the output guardrail that stopped the answer
    flags: list[Verdict] = field(default_factory=list)  # output rules in flag mode that hit


def _usage(
    prepared: PreparedChat, outcome: Outcome, *, without_model: bool
) -> tuple[int, int, int]:
    """(input, cached input, output) tokens to charge: as the upstream reported them, else
    counted locally.

    An answer made without the model (a cache hit, or the local "I don't know" when nothing
    was retrieved) is charged nothing, however it ended: no upstream request was made.

    An upstream failure that streamed nothing and reported no usage (a 5xx, a refused
    connection, a timeout before the first token) is charged nothing: providers do not
    bill failed requests. A client that leaves, or a stream cut after some text, is charged
    for the prompt and what was streamed: the provider did the work.
    """
    if without_model:
        return 0, 0, 0
    finished = outcome.finished
    text = "".join(outcome.parts)
    reported = finished is not None and finished.input_tokens is not None
    if outcome.status.startswith("error:") and not text and not reported:
        return 0, 0, 0
    if finished is None or finished.input_tokens is None:
        return prepared.prompt_tokens, 0, count_tokens(text)
    # Counted only when the upstream did not report it: the whole answer through tiktoken,
    # 0.6% of the samples of a worker at 50 concurrent answers (py-spy, issue 17).
    output = finished.output_tokens if finished.output_tokens is not None else count_tokens(text)
    return finished.input_tokens, finished.cached_input_tokens, output


async def settle_patiently(
    services: Services, admission: Admission[PreparedChat], outcome: Outcome
) -> dict[str, Any]:
    """`settle_call`, asked again each time the connection pool stays drained for
    ``DB_POOL_TIMEOUT_S`` (sqlalchemy.exc.TimeoutError: no connection, so nothing was
    written), until `SETTLE_PATIENCE_S` have passed; then the timeout is raised. Under a
    burst of answers ending together (issue 17: 1,000 streams on one worker) the first
    timeout lost the answer ("could not be saved") and left its reservation for the expiry
    sweep to charge in full. Raises SQLAlchemyError as `settle_call` does."""
    started = time.monotonic()
    while True:
        try:
            return await settle_call(services, admission, outcome)
        except PoolTimeout:
            waited = time.monotonic() - started
            if waited >= SETTLE_PATIENCE_S:
                raise
            log.warning(
                "settling call %s waits for a database connection (%.0f s so far)",
                admission.prepared.trace_id,
                waited,
            )


async def settle_call(
    services: Services, admission: Admission[PreparedChat], outcome: Outcome
) -> dict[str, Any]:
    """Settle and record the call; returns the record the `done` (or final) event carries
    (its ``message_id`` is None when the conversation was deleted while the answer
    streamed). Raises SQLAlchemyError when the database refuses (the caller reports it)."""
    prepared = admission.prepared
    reservation = admission.reservation
    input_tokens, cached, output_tokens = _usage(
        prepared, outcome, without_model=prepared.without_model
    )
    route = prepared.route
    model = (outcome.finished.model if outcome.finished else outcome.model) or route.model
    price = services.prices[model]
    cost = price.cost(
        input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached
    )
    if cost > reservation.amount:  # only a tokenizer far off the reserved margin gets here
        log.error(
            "ALERT call %s cost $%s, more than its reservation of $%s",
            prepared.trace_id,
            cost,
            reservation.amount,
        )
    # A retracted answer is never stored or logged: the user saw the retraction message.
    shown = RETRACTED_MESSAGE if outcome.retracted else "".join(outcome.parts)
    policy = services.settings.content_logging
    async with session_scope(services.sessions) as session:
        # The user may have deleted the conversation while it streamed: the answer is then
        # not stored (nor its text logged), but the call is still settled and recorded.
        # One statement (app/settle_writes.py): the answer, unless the conversation is gone,
        # and the reservation closed, None when the expiry sweep already charged it whole.
        message_id, closed = await write_answer(
            session,
            Answer(
                conversation_id=prepared.conversation_id,
                content=shown,
                status=outcome.status,
                sources=source_payload(prepared.passages),
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cost_usd=cost,
                trace_id=prepared.trace_id,
            ),
            reservation_id=reservation.id,
        )
        kept = message_id is not None
        settled = closed is not None
        call = await record_call(
            session,
            rollups=False,  # after the counters, below: the lock order of every writer
            user_id=prepared.user_id,
            conversation_id=prepared.conversation_id,
            model=model,
            prompt_version=route.prompt_version,
            arm=route.arm,
            status=outcome.status if settled else f"{outcome.status}:late",
            input_tokens=input_tokens,
            cached_input_tokens=cached,
            output_tokens=output_tokens,
            cost_usd=cost if settled else Decimal(0),
            reserved_usd=reservation.amount,
            ttft_ms=outcome.ttft_ms,
            latency_ms=(time.perf_counter() - outcome.started) * 1000,
            reservation_id=reservation.id if settled else None,
            trace_id=prepared.trace_id,
            attempts=outcome.finished.attempts if outcome.finished else 1,
            provider=services.llm.provider,
            price_source=price.source,
            question=for_call_log(prepared.question, policy=policy) if kept else None,
            answer=for_call_log(shown, policy=policy) if kept else None,
            cache_hit=prepared.cached is not None,
            saved_usd=prepared.cached.live_cost_usd if prepared.cached else Decimal(0),
        )
        verdicts = [*prepared.triggers, *(("output", v) for v in outcome.flags)]
        if outcome.retracted is not None:
            verdicts.append(("output", outcome.retracted))
        record_triggers(
            session,
            verdicts,
            user_id=prepared.user_id,
            trace_id=prepared.trace_id,
            policy=policy,
        )
        # Last, with the rollups, sent with the COMMIT in one round trip: the counters'
        # global rows and the hourly rollup row are shared by every answer ending now and
        # stay locked until the commit, so they are taken after every other write, and
        # never across a wait for this process (issue 17: 1,000 answers ending together
        # drained the pool behind those locks). Counters before rollups, as every writer
        # takes them (the sweeper, the health probe, summaries).
        charged = await commit_call(session, call, closed, cost=cost)
        spent, reserved = charged or await spend_today(session, user_id=prepared.user_id)
    return {
        "message_id": message_id,
        "model": model,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        "cost_usd": str(cost),
        "remaining_today_usd": remaining_display(
            services.settings.user_daily_cap_usd, spent, reserved
        ),
    }
