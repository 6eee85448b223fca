"""Layer 2, per-user rate limit (sliding window) and concurrent-streams limit.

Both live in the rate-limit store (memory, Redis or Upstash). If the store cannot answer
within RATE_LIMIT_STORE_TIMEOUT_S the request is refused (503), unless
RATE_LIMIT_FAIL_OPEN is set: a limiter that silently fails open is no limiter. The timeout
counts the store's time, not the time the event loop spent elsewhere (app/caps/deadline.py).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, field

import httpx
from redis.exceptions import RedisError
from upstash_redis.errors import UpstashError

from app.caps.deadline import store_deadline
from app.caps.refusal import CONCURRENCY, RATE_LIMIT, STORE_DOWN, CapRefused
from app.caps.store import RateStore
from app.settings import Settings

log = logging.getLogger("ragship.caps")
STORE_ERRORS = (TimeoutError, OSError, RedisError, UpstashError, httpx.HTTPError)


@dataclass
class StreamLease:
    key: str | None = None
    member: str = ""
    headers: dict[str, str] = field(default_factory=dict)


class RateLimiter:
    def __init__(self, store: RateStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def admit(self, user_id: uuid.UUID) -> StreamLease:
        """Count one request and take one stream lease, or refuse: one call to the store
        (`RateStore.admit`), which was two round trips, each a wait on a busy event loop."""
        s = self.settings
        member = uuid.uuid4().hex
        key = f"streams:{user_id}"
        try:
            async with store_deadline(s.rate_limit_store_timeout_s):
                window, acquired = await self.store.admit(
                    f"rl:{user_id}",
                    key,
                    limit=s.rate_limit_requests,
                    window_s=s.rate_limit_window_s,
                    streams=s.max_concurrent_streams,
                    ttl_s=s.reservation_ttl_s,
                    member=member,
                )
        except STORE_ERRORS as err:
            return self._store_down(err)
        headers = {
            "RateLimit-Limit": str(s.rate_limit_requests),
            "RateLimit-Remaining": str(window.remaining),
            "RateLimit-Policy": f"{s.rate_limit_requests};w={s.rate_limit_window_s}",
        }
        if not window.allowed:
            retry = math.ceil(window.retry_after_s)
            headers["RateLimit-Reset"] = str(retry)
            raise CapRefused(
                RATE_LIMIT,
                429,
                f"You can send {s.rate_limit_requests} messages every "
                f"{_window_words(s.rate_limit_window_s)}. Please wait {retry}s.",
                retry_after_s=retry,
                headers=headers,
            )
        if not acquired:
            raise CapRefused(
                CONCURRENCY,
                429,
                f"You already have {s.max_concurrent_streams} answers in progress: "
                "wait for one to finish.",
                retry_after_s=1,
                headers=headers,
            )
        return StreamLease(key, member, headers)

    async def release(self, lease: StreamLease) -> None:
        if lease.key is None:
            return
        try:
            async with store_deadline(self.settings.rate_limit_store_timeout_s):
                await self.store.release(lease.key, member=lease.member)
        except STORE_ERRORS as err:  # the lease expires on its own after RESERVATION_TTL_S
            log.warning("could not release stream lease %s: %r", lease.member, err)

    def _store_down(self, err: BaseException) -> StreamLease:
        if self.settings.rate_limit_fail_open:
            log.error("rate-limit store unavailable, failing open: %r", err)
            return StreamLease()
        log.error("rate-limit store unavailable, refusing: %r", err)
        raise CapRefused(
            STORE_DOWN,
            503,
            "Requests are paused for a moment: the rate limiter is unavailable. "
            "Please try again shortly.",
            retry_after_s=5,
        )


def _window_words(seconds: int) -> str:
    if seconds == 60:
        return "minute"
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"
