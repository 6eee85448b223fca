"""The rate-limit store interface and its in-process backend (single process only).

A store answers two atomic questions, each in one round trip, on the store's own clock:
- `hit`: may this user make one more request in the sliding window?
- `acquire`/`release`: may this user open one more concurrent stream (a lease that
  expires on its own if a replica dies holding it)?
`admit` asks both for one request (the lease only when the window allows it), in one
round trip.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class WindowResult:
    allowed: bool
    remaining: int
    retry_after_s: float  # when refused: until the oldest request leaves the window


class RateStore(Protocol):
    async def hit(self, key: str, *, limit: int, window_s: float, member: str) -> WindowResult: ...

    async def acquire(self, key: str, *, limit: int, ttl_s: float, member: str) -> bool: ...

    async def admit(
        self,
        window_key: str,
        lease_key: str,
        *,
        limit: int,
        window_s: float,
        streams: int,
        ttl_s: float,
        member: str,
    ) -> tuple[WindowResult, bool]:
        """`hit` on `window_key`, then, only when it allows the request, `acquire` on
        `lease_key` (`streams` leases at most), as one atomic step and one round trip:
        (the window's answer, whether the lease was taken; False when not tried)."""
        ...

    async def release(self, key: str, *, member: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """For the embedded default only: one process, so process memory is the whole truth."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._lock = asyncio.Lock()

    async def hit(self, key: str, *, limit: int, window_s: float, member: str) -> WindowResult:
        async with self._lock:
            return self._hit(key, limit=limit, window_s=window_s)

    async def acquire(self, key: str, *, limit: int, ttl_s: float, member: str) -> bool:
        async with self._lock:
            return self._acquire(key, limit=limit, ttl_s=ttl_s, member=member)

    async def admit(
        self,
        window_key: str,
        lease_key: str,
        *,
        limit: int,
        window_s: float,
        streams: int,
        ttl_s: float,
        member: str,
    ) -> tuple[WindowResult, bool]:
        async with self._lock:
            window = self._hit(window_key, limit=limit, window_s=window_s)
            if not window.allowed:
                return window, False
            return window, self._acquire(lease_key, limit=streams, ttl_s=ttl_s, member=member)

    def _hit(self, key: str, *, limit: int, window_s: float) -> WindowResult:
        now = time.monotonic()
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - window_s:
            window.popleft()
        if len(window) < limit:
            window.append(now)
            return WindowResult(True, limit - len(window), 0.0)
        return WindowResult(False, 0, window[0] + window_s - now)

    def _acquire(self, key: str, *, limit: int, ttl_s: float, member: str) -> bool:
        now = time.monotonic()
        leases = {m: t for m, t in self._leases.get(key, {}).items() if t > now}
        self._leases[key] = leases
        if len(leases) >= limit:
            return False
        leases[member] = now + ttl_s
        return True

    async def release(self, key: str, *, member: str) -> None:
        async with self._lock:
            self._leases.get(key, {}).pop(member, None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
