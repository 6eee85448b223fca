"""The cap chain, in order, in one place. Nothing reaches the upstream without passing it.

1. input bounds (no I/O)                      → 413
2. per-user rate limit, concurrent streams    → 429 (store down: 503, or allow if configured)
   ... retrieval runs here: it costs no money, and the reservation needs the real prompt ...
3. kill switch, model has a price, per-request maximum cost
4. reservation against the per-user daily cap, the global daily cap and the monthly budget

Every refusal is recorded in the call ledger with the layer that refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

from app.calls import record_refusal
from app.caps import budget
from app.caps.bounds import check_input_bounds
from app.caps.killswitch import is_paused
from app.caps.ratelimit import StreamLease
from app.caps.refusal import KILL_SWITCH, REQUEST_COST, UNPRICED_MODEL, CapRefused
from app.llm.pricing import max_cost_usd
from app.services import Services
from app.tokens import count_message_tokens


class HasMessages(Protocol):
    messages: list[dict[str, str]]


P = TypeVar("P", bound=HasMessages)


@dataclass
class Admission(Generic[P]):
    prepared: P
    lease: StreamLease
    reservation: budget.Reservation
    max_tokens: int


async def admit(
    services: Services,
    *,
    user_id: uuid.UUID,
    message: str,
    max_tokens: int | None,
    prepare: Callable[[], Awaitable[P]],
) -> Admission[P]:
    settings = services.settings
    try:
        tokens = check_input_bounds(settings, message=message, max_tokens=max_tokens)
        lease = await services.limiter.admit(user_id)
        try:
            prepared = await prepare()
            reservation = await _reserve(services, user_id, prepared.messages, tokens)
        except BaseException:
            await services.limiter.release(lease)
            raise
    except CapRefused as refused:
        await record_refusal(
            services.sessions, user_id=user_id, model=services.llm.model, layer=refused.layer
        )
        raise
    return Admission(prepared, lease, reservation, tokens)


async def _reserve(
    services: Services, user_id: uuid.UUID, messages: list[dict[str, str]], max_tokens: int
) -> budget.Reservation:
    settings = services.settings
    async with services.sessions() as session:
        paused = await is_paused(session)
    if paused:
        raise CapRefused(KILL_SWITCH, 503, "The assistant is paused by the operator.")
    amount = max_cost_usd(
        services.llm.model,
        input_tokens=count_message_tokens(messages),
        max_output_tokens=max_tokens,
    )
    if amount is None:
        raise CapRefused(
            UNPRICED_MODEL,
            503,
            f"The model {services.llm.model} has no known price, so it cannot be used. "
            "The operator must add it to the price table.",
        )
    if amount > settings.max_request_cost_usd:
        raise CapRefused(
            REQUEST_COST,
            413,
            f"This question with its context could cost ${amount:.4f}, more than the "
            f"per-request limit of ${settings.max_request_cost_usd}. Try a shorter question "
            "or a new conversation.",
        )
    return await budget.reserve(
        services.sessions, settings, user_id=user_id, amount=Decimal(amount)
    )


async def release_unused(services: Services, admission: Admission[P]) -> None:
    """Give back an admission whose call never started: nothing was spent."""
    async with services.sessions() as session:
        await budget.settle(session, reservation_id=admission.reservation.id, cost=Decimal(0))
        await session.commit()
    await services.limiter.release(admission.lease)
