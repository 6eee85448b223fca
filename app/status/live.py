"""The status page follows the LLM upstream as requests see it, not one probe later.

When an answer fails with a fault only the operator can fix, or the circuit breaker opens
after a streak of failures, a ``down`` result for ``llm_upstream`` is written (and an
incident opened) within that request; the first success after it writes ``operational``
(and closes the incident). The rows are the prober's own (`status_probes`), so every
replica's status page shows them at once.

Which state this replica last wrote is kept in memory only to avoid a write per request;
the state itself is in the database.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.llm.breaker import CircuitBreaker
from app.llm.errors import OPERATOR_KINDS, UpstreamError
from app.models import StatusProbe, utcnow
from app.status.prober import Probe, update_incidents

log = logging.getLogger("ragship.status")
COMPONENT = "llm_upstream"


class LiveStatus:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, main_model: str) -> None:
        self.sessions = sessions
        self.main_model = main_model  # the status page's LLM line is about the main model
        self._written: str | None = None

    async def failed(self, err: UpstreamError, *, model: str, breaker: CircuitBreaker) -> None:
        """Write ``down`` when ``err`` needs the operator or ``breaker`` is open."""
        if model != self.main_model or self._written == "down":
            return
        if err.kind in OPERATOR_KINDS:
            detail = f"{err.kind}: {err}"
        elif breaker.state == "open":
            detail = (
                f"circuit breaker open after {breaker.reason} "
                f"(retry in {breaker.retry_in_s():.0f}s)"
            )
        else:
            return
        await self._write(Probe(COMPONENT, "down", None, detail))

    async def succeeded(self, *, model: str) -> None:
        """Write ``operational`` on the first success after this replica wrote ``down``."""
        if model == self.main_model and self._written == "down":
            await self._write(Probe(COMPONENT, "operational", None, "ok (answers succeed)"))

    async def _write(self, probe: Probe) -> None:
        try:
            async with self.sessions() as session, session.begin():
                session.add(
                    StatusProbe(
                        component=probe.component,
                        state=probe.state,
                        latency_ms=probe.latency_ms,
                        detail=probe.detail[:500],
                        checked_at=utcnow(),
                    )
                )
                await update_incidents(session, [probe])
        except SQLAlchemyError:  # the answer's own error matters more; the prober catches up
            log.exception("could not record the LLM upstream as %s", probe.state)
            return
        self._written = probe.state
