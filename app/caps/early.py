"""The early reservation: the reservation sent in the search's round trip, on a bound.

The exact amount a call may cost needs its prompt, and the prompt needs the passages, so the
reservation used to wait for retrieval and pay a round trip of its own: at 50 concurrent
answers on one worker that round trip took 39 / 92 ms (p50 / p95) of event-loop turns,
for well under a millisecond of PostgreSQL's time (issue 17). Instead `prepare_chat` sends
the reservation as the last statement of the search's pipelined round trip (`app.db.
pipelined`), for an amount known before retrieval that covers any prompt the request can
build (`app/rag/prompt_bound.py`, capped at the per-request maximum): the same statement
`budget.reserve` sends, with the kill switch, the three caps and the question's writes
(`app/question.py`).

When the real prompt is priced (`app/caps/chain.py`), the early reservation is used if it
covers the exact amount and the exact amount is within the per-request maximum: no round
trip of its own. Otherwise (the bound refused by a cap with room for the exact amount, a
prompt past the bound, an amount past the maximum, the kill switch) it is given back if it
was allowed (`give_back`) and the chain reserves the exact amount as before, which decides
the refusal: an early reservation never refuses a request the exact one would admit, and
never admits one it would refuse. The early amount is what the answer holds until it
settles; settling charges the real cost and frees the rest (docs/caps.md, "The early
reservation").
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.caps import budget
from app.db import session_scope
from app.llm.pricing import PriceBook
from app.services import Services

GIVE_BACK_PATIENCE_S = 60  # how long a give-back waits for a drained pool, in all
EARLY = "early"  # the span attribute `ragship.reservation`: the early reservation was used
EXACT = "exact"  # ... or the exact one was made after retrieval


@dataclass
class EarlyReservation:
    """One request's early reservation. `statement` makes it, `saw` reads its outcome;
    ``reservation`` is then set when it was allowed (``writes`` made with it). A refused
    one leaves nothing to keep: the exact reservation decides the refusal."""

    user_id: uuid.UUID
    max_output_tokens: int  # the request's max_tokens, as the chain reserves for it
    reservation: budget.Reservation | None = None
    writes: budget.AdmittedWrites | None = None
    _sent: tuple[budget.Reservation, budget.AdmittedWrites | None] | None = field(
        default=None, repr=False
    )

    def statement(
        self,
        services: Services,
        *,
        models: Sequence[str],
        input_tokens: int,
        also: budget.AdmittedWrites | None,
    ) -> tuple[TextClause, dict[str, Any]]:
        """The reservation's statement for `pipelined`, for ``input_tokens`` (a bound of the
        prompt's tokens) at the dearest of ``models``, capped at MAX_REQUEST_COST_USD, with
        the kill switch checked and ``also`` riding along. Raises ValueError as
        `budget.reserve_statement` does."""
        amount = early_amount(
            services.prices,
            models,
            input_tokens=input_tokens,
            max_output_tokens=self.max_output_tokens,
            ceiling=services.settings.max_request_cost_usd,
        )
        reservation, statement, params = budget.reserve_statement(
            services.settings, user_id=self.user_id, amount=amount, kill_switch=True, also=also
        )
        self._sent = (reservation, also)
        return statement, params

    def saw(self, rows: Sequence[Sequence[Any]] | None) -> None:
        """Keep the outcome from the statement's rows (as `pipelined` returns them). Raises
        ``also.gone()`` when its lock locked no row (nothing reserved or written), and
        RuntimeError when no statement was made."""
        if self._sent is None:
            raise RuntimeError("no early reservation was sent")
        reservation, also = self._sent
        if budget.reserve_outcome(rows, also) == budget.ALLOWED:
            self.reservation, self.writes = reservation, also

    def covers(self, amount: Decimal, *, ceiling: Decimal) -> bool:
        """Whether the allowed early reservation can stand for an exact reservation of
        ``amount`` USD: it holds at least that much, and ``amount`` is within ``ceiling``."""
        return self.reservation is not None and amount <= min(self.reservation.amount, ceiling)

    async def give_back(self, services: Services) -> None:
        """Undo an allowed early reservation, in one transaction: the writes made with it are
        removed (`AdmittedWrites.undo`) and the reservation settles at $0, freeing its
        amount. A no-op when none is held; idempotent. Asked again while the connection
        pool stays drained (sqlalchemy.exc.TimeoutError: nothing was written), for up to
        `GIVE_BACK_PATIENCE_S`, as a settlement is (app/settle.py). Raises SQLAlchemyError
        when the database refuses: the reservation then stays until the expiry sweep
        charges it in full (RESERVATION_TTL_S), like a crashed replica's."""
        reservation, writes = self.reservation, self.writes
        if reservation is None:
            return
        started = time.monotonic()
        while True:
            try:
                async with session_scope(services.sessions) as session:
                    if writes is not None:  # rows first, counters after: settling's order
                        for sql in writes.undo:
                            await session.execute(text(sql), dict(writes.params))
                    await budget.settle(session, reservation_id=reservation.id, cost=Decimal(0))
                break
            except PoolTimeout:
                if time.monotonic() - started >= GIVE_BACK_PATIENCE_S:
                    raise
        self.reservation = self.writes = None


def early_amount(
    prices: PriceBook,
    models: Sequence[str],
    *,
    input_tokens: int,
    max_output_tokens: int,
    ceiling: Decimal,
) -> Decimal:
    """USD to reserve early: the most a call of ``input_tokens`` (the prompt's bound) and
    ``max_output_tokens`` can cost at the dearest of ``models`` (`PriceBook.max_cost`, the
    exact reservation's own formula), at most ``ceiling``: an exact amount above it is
    refused anyway."""
    amount = prices.max_cost(models, input_tokens=input_tokens, max_output_tokens=max_output_tokens)
    return min(Decimal(amount), ceiling)
