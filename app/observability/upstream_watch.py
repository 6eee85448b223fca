"""The LLM client's watcher (`app/llm/watch.py`): alerts the operator about failures only
they can fix, and keeps the status page's LLM line live."""

from __future__ import annotations

from app.llm.breaker import CircuitBreaker
from app.llm.errors import OPERATOR_KINDS, UpstreamError
from app.observability.upstream_alarm import UpstreamAlarm
from app.status.live import LiveStatus


class UpstreamWatch:
    def __init__(self, alarm: UpstreamAlarm, live: LiveStatus) -> None:
        self.alarm = alarm
        self.live = live

    async def failed(self, err: UpstreamError, *, model: str, breaker: CircuitBreaker) -> None:
        if err.kind in OPERATOR_KINDS:
            err.operator_alerted(await self.alarm.sound(err.kind, model=model))
        await self.live.failed(err, model=model, breaker=breaker)

    async def succeeded(self, *, model: str) -> None:
        await self.live.succeeded(model=model)
