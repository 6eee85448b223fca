"""Faults the local model can be told to inject, so every failure path is testable over HTTP."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterator
from typing import Literal

from pydantic import BaseModel, Field

FaultKind = Literal[
    "rate_limit",  # 429 with Retry-After
    "insufficient_quota",  # 429, the provider's own spending cap
    "server_error",  # 500
    "unavailable",  # 503
    "stall",  # wait `delay_s` before the first token
    "cut",  # drop the connection after `after_tokens` tokens
    "malformed",  # send a chunk that is not JSON after `after_tokens` tokens
    "content_filter",  # finish_reason=content_filter with no text
    "slow",  # wait `delay_s` between tokens
    "burst",  # the whole stream in one write, as a buffering proxy in between delivers it
    "adversarial",  # misbehave on purpose: see `behaviour` and app/localmodel/adversary.py
    "scripted",  # answer with `text` verbatim (rich Markdown, hostile markup: browser tests)
]


class Fault(BaseModel):
    kind: FaultKind
    times: int = Field(1, ge=1, description="How many requests this fault applies to.")
    retry_after: float = Field(1.0, ge=0)
    delay_s: float = Field(5.0, ge=0, le=600)
    after_tokens: int = Field(3, ge=0)
    model: str | None = Field(None, description="Only requests for this model (default: any).")
    behaviour: str = Field("planted", description="For adversarial: what to do wrong.")
    text: str = Field("", max_length=20_000, description="For scripted: the answer to give.")


class FaultQueue:
    """Faults are consumed one request at a time, first in first out."""

    def __init__(self) -> None:
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, model: str) -> Fault | None:
        """The first queued fault that applies to ``model``, using up one of its times."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.model not in (None, model):
                    continue
                if fault.times <= 1:
                    del self._faults[index]
                else:
                    self._faults[index] = fault.model_copy(update={"times": fault.times - 1})
                return fault
            return None


async def burst(stream: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `burst` fault: every chunk of `stream`, held back and sent in one write."""
    yield "".join([chunk async for chunk in stream])
