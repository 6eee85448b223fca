"""Can we reach the LLM? A real minimal call, cached so that monitors polling every minute
cannot run up a bill, and recorded in the call ledger like any other call."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import anyio

from app.calls import record_call
from app.caps import budget
from app.caps.refusal import CapRefused
from app.llm.client import PING_MAX_TOKENS, PING_MESSAGES
from app.llm.errors import UpstreamError
from app.models import utcnow
from app.services import Services
from app.tokens import count_message_tokens


@dataclass(frozen=True)
class LLMHealth:
    ok: bool
    latency_ms: float
    detail: str
    checked_at: datetime
    model: str


class LLMHealthCheck:
    def __init__(self, services: Services) -> None:
        self.services = services
        self._cached: LLMHealth | None = None
        self._cached_at = 0.0
        self._lock = asyncio.Lock()

    async def check(self, *, force: bool = False) -> tuple[LLMHealth, bool]:
        """(result, whether it came from the cache). The prober forces a fresh check."""
        ttl = self.services.settings.llm_health_cache_s
        async with self._lock:  # concurrent monitors share one upstream call
            fresh = time.monotonic() - self._cached_at < ttl
            if self._cached is not None and fresh and not force:
                return self._cached, True
            self._cached = await self._probe()
            self._cached_at = time.monotonic()
            return self._cached, False

    async def _probe(self) -> LLMHealth:
        llm = self.services.llm
        breaker = llm.breakers[llm.model]
        if breaker.state == "open":
            retry = breaker.retry_in_s()
            detail = f"circuit breaker open after {breaker.reason} (retry in {retry:.0f}s)"
            return LLMHealth(False, 0.0, detail, utcnow(), llm.model)
        try:  # a probe is a real call: reserved against the global caps like any other
            reservation = await budget.reserve(
                self.services.sessions,
                self.services.settings,
                user_id=None,
                amount=self.services.prices[llm.model].max_cost(
                    input_tokens=count_message_tokens(PING_MESSAGES),
                    max_output_tokens=PING_MAX_TOKENS,
                ),
            )
        except CapRefused as refused:
            detail = f"not checked: {refused.message}"
            return LLMHealth(False, 0.0, detail, utcnow(), llm.model)
        started = time.perf_counter()
        try:
            input_tokens, output_tokens = await llm.ping()
        except UpstreamError as err:
            latency = (time.perf_counter() - started) * 1000
            await self._record(reservation, f"error:{err.kind}", latency, 0, 0)
            return LLMHealth(False, latency, f"{err.kind}: {err}", utcnow(), llm.model)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._record(reservation, "cancelled", 0.0, 0, 0)
            raise
        latency = (time.perf_counter() - started) * 1000
        await self._record(reservation, "ok", latency, input_tokens, output_tokens)
        return LLMHealth(True, latency, "ok", utcnow(), llm.model)

    async def _record(
        self, reservation: budget.Reservation, status: str, latency_ms: float, inp: int, out: int
    ) -> None:
        """Settle the probe's reservation and record it, in one transaction."""
        model = self.services.llm.model
        price = self.services.prices[model]
        cost = price.cost(input_tokens=inp, output_tokens=out)
        async with self.services.sessions() as session:
            await budget.settle(session, reservation_id=reservation.id, cost=cost)
            await record_call(
                session,
                user_id=None,
                model=model,
                status=status,
                feature="health",
                input_tokens=inp,
                output_tokens=out,
                cost_usd=cost,
                reserved_usd=reservation.amount,
                reservation_id=reservation.id,
                latency_ms=latency_ms,
                price_source=price.source,
            )
            await session.commit()
