"""The cap chain, in order, in one place. Nothing reaches the upstream without passing it.

1. input bounds (no I/O)                      → 413
2. per-user rate limit, concurrent streams    → 429 (store down: 503, or allow if configured)
   ... retrieval runs here: it costs no money, and the reservation needs the real prompt ...
3. kill switch, per-request maximum cost (every model was priced at start)
4. reservation against the per-user daily cap, the global daily cap and the monthly budget
   (with, in the same statement, the caller's writes for an admitted request: the question)

Layers 3 and 4 are first sent in retrieval's own round trip, on a bound of the amount
(app/caps/early.py); the exact reservation runs only when that one does not cover it. On an
idle worker layer 2 may have run beside the sign-in already (app/caps/overlap.py): its
outcome is taken here in its place.

Every refusal is recorded in the call ledger with the layer that refused.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

import anyio
from opentelemetry import trace
from opentelemetry.context import Context

from app.calls import record_refusal
from app.caps import budget
from app.caps.bounds import check_input_bounds
from app.caps.early import EARLY, EXACT, EarlyReservation
from app.caps.overlap import EarlyLimit
from app.caps.ratelimit import StreamLease
from app.caps.refusal import CapRefused
from app.db import session_scope
from app.services import Services


class HasMessages(Protocol):
    messages: list[dict[str, str]]
    without_model: bool  # answered without an upstream call: nothing to reserve

    @property
    def models(self) -> Sequence[str]:
        """The models that may answer: the routed one, then the fallback."""
        ...

    @property
    def prompt_tokens(self) -> int:
        """`messages` in prompt tokens (app/tokens.py `count_message_tokens`)."""
        ...


P = TypeVar("P", bound=HasMessages)
log = logging.getLogger(__name__)


@dataclass
class Admission(Generic[P]):
    prepared: P
    lease: StreamLease
    reservation: budget.Reservation
    max_tokens: int
    # Set when the answer's stream starts: from then on it settles the call and gives the
    # lease back itself (app/chat.py), so `release_unused` has nothing left to do.
    streaming: bool = False


async def admit(
    services: Services,
    *,
    user_id: uuid.UUID,
    message: str,
    max_tokens: int | None,
    prepare: Callable[[EarlyReservation], Awaitable[P]],
    trace_context: Context | None = None,
    with_reservation: Callable[[P], budget.AdmittedWrites] | None = None,
    limit: EarlyLimit | None = None,
) -> Admission[P]:
    """Run the chain for one request; `CapRefused` (recorded in the ledger) when a layer
    refuses. ``prepare`` gets an `EarlyReservation` it may send with its own round trip
    (app/caps/early.py); ``with_reservation`` makes, from what ``prepare`` returned, the
    writes to run in the exact reservation's statement when it is allowed (app/question.py:
    the question). ``limit``: layer 2's outcome for ``user_id`` when it ran beside the
    sign-in (app/caps/overlap.py), taken instead of asking the limiter."""
    settings = services.settings
    tracer = services.tracer
    try:
        tokens = check_input_bounds(settings, message=message, max_tokens=max_tokens)
        with tracer.start_as_current_span("caps.rate_limit", context=trace_context):
            if limit is not None and limit.user_id == user_id:
                lease = limit.take()  # the lease, or the refusal raised
            else:
                lease = await services.limiter.admit(user_id)
        early = EarlyReservation(user_id, tokens)
        try:
            with tracer.start_as_current_span("retrieve", context=trace_context):
                prepared = await prepare(early)
            with tracer.start_as_current_span("caps.reserve", context=trace_context) as span:
                reservation = await _reserve(
                    services,
                    user_id,
                    prepared,
                    max_tokens=tokens,
                    early=early,
                    also=with_reservation(prepared) if with_reservation else None,
                )
                used = early.reservation is not None and reservation is early.reservation
                span.set_attribute("ragship.reservation", EARLY if used else EXACT)
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await _give_back(services, early)
                finally:
                    await services.limiter.release(lease)
            raise
    except CapRefused as refused:
        trace.get_current_span(trace_context).set_attribute("ragship.refused_by", refused.layer)
        await record_refusal(
            services.sessions, user_id=user_id, model=services.llm.model, layer=refused.layer
        )
        raise
    return Admission(prepared, lease, reservation, tokens)


async def _reserve(
    services: Services,
    user_id: uuid.UUID,
    prepared: HasMessages,
    *,
    max_tokens: int,
    early: EarlyReservation,
    also: budget.AdmittedWrites | None = None,
) -> budget.Reservation:
    """Layers 3 and 4: kill switch, request ceiling, the three caps.

    The early reservation when it covers the exact amount (app/caps/early.py): no round
    trip. Otherwise it is given back and the exact amount reserved in one round trip, with
    ``also`` in the same statement. An answer made without the model (a cache hit, the local
    "I don't know") costs $0: it still passes the kill switch and leaves a reservation to
    settle, but needs no budget (an early one holds its bound until it settles)."""
    # Reserved at the dearest model that may answer (the routed or canary model chosen for
    # this request, or its fallback): a fallback can never cost more than the reservation
    # (docs/caps.md, "Fallback pricing"; docs/routing.md).
    amount = (
        Decimal(0)
        if prepared.without_model
        else services.prices.max_cost(
            prepared.models,
            input_tokens=prepared.prompt_tokens,
            max_output_tokens=max_tokens,
        )
    )
    ceiling = services.settings.max_request_cost_usd
    if early.reservation is not None and early.covers(amount, ceiling=ceiling):
        return early.reservation
    await early.give_back(services)  # nothing held or written from here on
    return await budget.reserve(
        services.sessions,
        services.settings,
        user_id=user_id,
        amount=Decimal(amount),
        kill_switch=True,
        ceiling=ceiling,
        also=also,
    )


async def _give_back(services: Services, early: EarlyReservation) -> None:
    """`EarlyReservation.give_back` for a request that fails or is refused after its early
    reservation: a database error is logged, not raised over the request's own (the
    reservation then stays until the expiry sweep charges it in full, RESERVATION_TTL_S,
    and the question stays stored)."""
    try:
        await early.give_back(services)
    except Exception:
        log.exception("could not give back early reservation %s", early.reservation)


async def release_unused(services: Services, admission: Admission[P]) -> None:
    """Give back an admission whose call never started: nothing was spent. Idempotent.

    Once the stream has started (`Admission.streaming`) this is a no-op that touches
    neither the database nor the store: the route calls it after every answer as a
    backstop, and at 1,000 answers ending together a database round trip each would take
    connections the answers' own settling needs (issue 17)."""
    if admission.streaming:
        return
    try:
        async with session_scope(services.sessions) as session:
            await budget.settle(session, reservation_id=admission.reservation.id, cost=Decimal(0))
    finally:
        # The stream slot whatever the database said (a drained pool raises): the
        # reservation expires on its own (RESERVATION_TTL_S), a held slot would refuse
        # the user's next answers with 429 until the lease's own expiry.
        await services.limiter.release(admission.lease)
