"""Can we reach the LLM? A real minimal call, cached so that monitors polling every minute
cannot run up a bill, and recorded in the call ledger like any other call."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from app.calls import record_call
from app.llm.errors import UpstreamError
from app.llm.pricing import cost_usd
from app.models import utcnow
from app.services import Services


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
        started = time.perf_counter()
        try:
            input_tokens, output_tokens = await llm.ping()
        except UpstreamError as err:
            latency = (time.perf_counter() - started) * 1000
            await self._record(f"error:{err.kind}", latency, 0, 0)
            return LLMHealth(False, latency, f"{err.kind}: {err}", utcnow(), llm.model)
        latency = (time.perf_counter() - started) * 1000
        await self._record("ok", latency, input_tokens, output_tokens)
        return LLMHealth(True, latency, "ok", utcnow(), llm.model)

    async def _record(self, status: str, latency_ms: float, inp: int, out: int) -> None:
        model = self.services.llm.model
        try:
            cost = cost_usd(model, input_tokens=inp, output_tokens=out)
        except KeyError:  # an unpriced model is refused for chat; a probe is still recorded
            cost = Decimal(0)
        async with self.services.sessions() as session:
            await record_call(
                session,
                user_id=None,
                model=model,
                status=status,
                feature="health",
                input_tokens=inp,
                output_tokens=out,
                cost_usd=cost,
                latency_ms=latency_ms,
            )
            await session.commit()
