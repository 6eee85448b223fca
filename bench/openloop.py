"""Open-loop load: requests sent at a fixed arrival rate, and where a side's ceiling is.

Open loop means a request is sent at its scheduled time whether or not the earlier ones
have finished (closed-loop concurrency would slow its own arrivals down as the server
slows, and hide the queue). Each request's time to first text is counted from its
scheduled send time, so a client that falls behind its schedule is charged, not hidden.

Used by `python -m bench ceiling` (bench/ceiling.py); the selection rules are pure and
unit-tested in tests/test_bench_ceiling.py.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.table import latency

SLO_S = 1.0  # p95 time to first text must stay at or under this (issue 17)
Kind = Literal["ok", "shed", "error"]


@dataclass(frozen=True)
class Outcome:
    """One request: ok (200, stream complete, `ttft_s` seconds from its scheduled send to the
    first answer text), shed (503 with Retry-After) or error (anything else)."""

    kind: Kind
    ttft_s: float | None = None
    why: str = ""  # for an error: the status, exception or last event, for the table's notes


@dataclass
class Step:
    """One offered rate (requests/s) held for `sent` requests, and what came back."""

    rate: float
    sent: int = 0
    ttft: list[float] = field(default_factory=list)
    shed: int = 0
    errors: int = 0
    wall_s: float = 0.0  # from the first scheduled send to the last request's end
    ends: list[float] = field(default_factory=list)  # when each ok answer ended, seconds
    why: Counter[str] = field(default_factory=Counter)  # errors by reason

    def add(self, outcome: Outcome, end: float = 0.0) -> None:
        if outcome.kind == "ok" and outcome.ttft_s is not None:
            self.ttft.append(outcome.ttft_s)
            self.ends.append(end)
        elif outcome.kind == "shed":
            self.shed += 1
        else:
            self.errors += 1
            self.why[outcome.why or "unknown"] += 1

    @property
    def p95(self) -> float:
        return latency(self.ttft).p95

    @property
    def completions_per_s(self) -> float:
        """Answers completed per second, between the first answer's end and the last's: the
        rate the side delivered at (0.0 with fewer than two answers)."""
        span = max(self.ends, default=0.0) - min(self.ends, default=0.0)
        return (len(self.ends) - 1) / span if len(self.ends) > 1 and span > 0 else 0.0

    def passes(self, slo_s: float = SLO_S) -> bool:
        """Every request answered (no error, none shed) and p95 TTFT at or under `slo_s`."""
        return bool(self.ttft) and self.errors == 0 and self.shed == 0 and self.p95 <= slo_s


def requests_for(rate: float, step_s: float, min_requests: int) -> int:
    """Requests in one step: `rate` × `step_s`, at least `min_requests` (so a slow rate still
    has enough samples for a p95)."""
    return max(min_requests, math.ceil(rate * step_s))


def keep_going(steps: Sequence[Step], slo_s: float = SLO_S) -> bool:
    """Whether to offer the next rate: yes until one step has failed and one more has run."""
    failed = [i for i, step in enumerate(steps) if not step.passes(slo_s)]
    return not failed or len(steps) - 1 - failed[0] < 1


def ceiling(steps: Sequence[Step], slo_s: float = SLO_S) -> float | None:
    """The highest offered rate whose step passed, with every lower step passing too (a pass
    after a failure, as noise can give, does not count); None when the first step failed."""
    best: float | None = None
    for step in sorted(steps, key=lambda s: s.rate):
        if not step.passes(slo_s):
            break
        best = step.rate
    return best


async def offer(rate: float, n: int, send: Callable[[float], Coroutine[Any, Any, Outcome]]) -> Step:
    """Send `n` requests at `rate` per second, open loop: request i starts at i / rate seconds
    whether or not the earlier ones are done. `send(scheduled)` gets the request's scheduled
    start (the event loop's clock, seconds) and measures its TTFT from there."""
    loop = asyncio.get_running_loop()
    step = Step(rate=rate, sent=n)
    start = loop.time()
    tasks: list[asyncio.Task[tuple[Outcome, float]]] = []

    async def timed(scheduled: float) -> tuple[Outcome, float]:
        outcome = await send(scheduled)
        return outcome, loop.time()

    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(scheduled)))
    for outcome, end in await asyncio.gather(*tasks):
        step.add(outcome, end)
    step.wall_s = loop.time() - start
    return step
