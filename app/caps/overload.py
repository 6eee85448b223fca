"""Layer 0, overload: a bound on the chat requests one worker admits at once.

An admission is in flight from the moment the request is authenticated until its first
event can be sent (session lookup, rate limit, embedding, retrieval, reservation, the
question's insert). Past `MAX_INFLIGHT_ADMISSIONS` a worker answers 503 with `Retry-After`
at once instead of queueing the request behind the others (where it would time out on the
event loop, the connection pool or a row lock and come back as a false "store unavailable"
or a 500). The count is per worker by design: it bounds this process's own queue, which
no other replica shares, so it lives in process memory.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from app.calls import record_refusal
from app.caps.refusal import OVERLOADED, CapRefused

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger("ragship.caps")


class AdmissionGate:
    """Counts admissions in flight; `enter` refuses past the limit without waiting.

    Only the event loop's thread touches it, so no lock is needed.
    """

    def __init__(self, limit: int, *, retry_after_s: int = 1) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.refused = 0  # since start, for /metrics and benchmarks

    def enter(self) -> AdmissionSlot:
        """Take a slot, or raise `CapRefused` (layer ``overloaded``, 503, Retry-After)."""
        if self.in_flight >= self.limit:
            self.refused += 1
            raise CapRefused(
                OVERLOADED,
                503,
                "The assistant is busy right now. Please try again in a moment.",
                retry_after_s=self.retry_after_s,
            )
        self.in_flight += 1
        return AdmissionSlot(self)


class AdmissionSlot:
    """One admission's place in the gate; `release` is idempotent."""

    def __init__(self, gate: AdmissionGate) -> None:
        self._gate: AdmissionGate | None = gate

    def release(self) -> None:
        if self._gate is not None:
            self._gate.in_flight -= 1
            self._gate = None


async def record_overload(services: Services, user_id: uuid.UUID) -> None:
    """The refusal on the books, after the 503 is sent (a background task): an overloaded
    worker answers first and writes second."""
    await record_refusal(
        services.sessions, user_id=user_id, model=services.llm.model, layer=OVERLOADED
    )
