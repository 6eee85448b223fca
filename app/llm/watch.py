"""What the LLM client tells the rest of the service about the upstream, as it happens.

The client calls a watcher after every attempt's verdict, so the operator is alerted and
the status page changes within the request that saw the failure (or the recovery), not one
probe interval later. The implementation lives outside `app/llm/` (it writes to the
database and sends alerts): `app/observability/upstream_watch.py`.
"""

from __future__ import annotations

from typing import Protocol

from app.llm.breaker import CircuitBreaker
from app.llm.errors import UpstreamError


class UpstreamWatcher(Protocol):
    async def failed(self, err: UpstreamError, *, model: str, breaker: CircuitBreaker) -> None:
        """An attempt on ``model`` failed (``breaker`` already holds the verdict). May
        change ``err``'s message (`UpstreamError.operator_alerted`); must not raise."""

    async def succeeded(self, *, model: str) -> None:
        """An attempt on ``model`` answered in full (or a health ping succeeded)."""
