"""Rate-limit stores on Redis: direct (redis://) and Upstash (its REST API over HTTPS).

Each check is one Lua script, so it is atomic and one round trip, and reads the time
with Redis's TIME: every replica shares the store's clock, not its own. A request's
admission (the window, then the stream lease) is one script too (`ADMIT`), which names
both keys, as scripts must for Redis to route them; Upstash runs multi-key scripts.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from upstash_redis.asyncio import Redis as UpstashRedis

from app.caps.deadline import WALL_FACTOR
from app.caps.store import MemoryStore, RateStore, WindowResult
from app.settings import Settings

# The sliding window: counts one request under `member` when fewer than `limit` are in the
# last `window` µs. Returns {allowed, remaining, retry µs}.
_WINDOW = """
local function window(key, now, limit, window, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count < limit then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, math.ceil(window / 1000))
    return {1, limit - count - 1, 0}
  end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {0, 0, tonumber(oldest[2]) + window - now}
end
"""
# A stream lease: a set whose scores are expiry times (ms); takes one under `member` when
# fewer than `limit` are live. Returns 1 or 0.
_LEASE = """
local function lease(key, now, limit, ttl, member)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, now + ttl, member)
    redis.call('PEXPIRE', key, ttl)
    return 1
  end
  return 0
end
"""
# The store's clock in µs and ms (one TIME call).
_NOW = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
"""
# KEYS[1] window key; ARGV: limit, window (µs), member. Returns {allowed, remaining, retry µs}.
SLIDING_WINDOW = (
    _WINDOW
    + _NOW
    + """
return window(KEYS[1], now_us, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3])
"""
)
# KEYS[1] lease set; ARGV: limit, ttl (ms), member. Returns 1 or 0.
ACQUIRE_LEASE = (
    _LEASE
    + _NOW
    + """
return lease(KEYS[1], now_ms, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3])
"""
)
# Both, as the limiter admits a request (`RateStore.admit`): the window, then, only when it
# allows the request, the lease. KEYS: window key, lease set; ARGV: window limit, window
# (µs), lease limit, ttl (ms), member. Returns {allowed, remaining, retry µs, leased}.
ADMIT = (
    _WINDOW
    + _LEASE
    + _NOW
    + """
local w = window(KEYS[1], now_us, tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[5])
if w[1] == 0 then
  return {0, w[2], w[3], 0}
end
return {1, w[2], w[3], lease(KEYS[2], now_ms, tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5])}
"""
)


def _window(result: Any) -> WindowResult:
    allowed, remaining, retry_us = (int(v) for v in result[:3])
    return WindowResult(bool(allowed), remaining, retry_us / 1_000_000)


def _admit_args(limit: int, window_s: float, streams: int, ttl_s: float, member: str) -> list[str]:
    return [
        str(limit),
        str(int(window_s * 1_000_000)),
        str(streams),
        str(int(ttl_s * 1000)),
        member,
    ]


def _admitted(result: Any) -> tuple[WindowResult, bool]:
    return _window(result), bool(int(result[3]))


MAX_CONNECTIONS = 100  # per worker: redis-py's own default for its asyncio pool


class RedisStore:
    def __init__(
        self, url: str, *, timeout_s: float, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        # Every call runs under a deadline of its caller's (the limiter's own,
        # app/caps/deadline.py, with its wall-clock backstop; the health checks'), which
        # decides when the store is too slow; a call it cancels drops its connection. So no
        # socket timeout: with one, redis-py sends each command in a task of its own
        # (`asyncio.wait_for`), three more turns of a busy event loop per call (issue 17).
        # Connecting and waiting for a pooled connection keep wall-clock backstops. A call past
        # `max_connections` waits for a connection (a blocking pool) instead of failing at
        # once: redis-py's default pool raises MaxConnectionsError, which the limiter took
        # for a store outage (false 503s when 1,000 answers ended together; issue 17).
        backstop_s = timeout_s * WALL_FACTOR
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=backstop_s,
            socket_timeout=None,
            socket_connect_timeout=backstop_s,
        )
        self._redis = redis.Redis.from_pool(pool)  # closes the pool with the client
        self._window = self._redis.register_script(SLIDING_WINDOW)
        self._acquire = self._redis.register_script(ACQUIRE_LEASE)
        self._admit = self._redis.register_script(ADMIT)

    async def hit(self, key: str, *, limit: int, window_s: float, member: str) -> WindowResult:
        args: list[int | str] = [limit, int(window_s * 1_000_000), member]
        return _window(await self._window(keys=[key], args=args))

    async def acquire(self, key: str, *, limit: int, ttl_s: float, member: str) -> bool:
        return bool(await self._acquire(keys=[key], args=[limit, int(ttl_s * 1000), member]))

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
        args = _admit_args(limit, window_s, streams, ttl_s, member)
        return _admitted(await self._admit(keys=[window_key, lease_key], args=args))

    async def release(self, key: str, *, member: str) -> None:
        await self._redis.zrem(key, member)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class UpstashStore:
    """Upstash Redis over its REST API: one HTTPS request per check (EVAL)."""

    def __init__(self, url: str, token: str) -> None:
        self._redis = UpstashRedis(
            url, token, rest_encoding=None, rest_retries=0, allow_telemetry=False
        )

    async def hit(self, key: str, *, limit: int, window_s: float, member: str) -> WindowResult:
        args = [str(limit), str(int(window_s * 1_000_000)), member]
        return _window(await self._redis.eval(SLIDING_WINDOW, keys=[key], args=args))

    async def acquire(self, key: str, *, limit: int, ttl_s: float, member: str) -> bool:
        args = [str(limit), str(int(ttl_s * 1000)), member]
        return bool(await self._redis.eval(ACQUIRE_LEASE, keys=[key], args=args))

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
        args = _admit_args(limit, window_s, streams, ttl_s, member)
        return _admitted(await self._redis.eval(ADMIT, keys=[window_key, lease_key], args=args))

    async def release(self, key: str, *, member: str) -> None:
        await self._redis.zrem(key, member)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.close()


def open_store(settings: Settings) -> RateStore:
    """The configured store: memory (one process only), Redis, or Upstash."""
    url = settings.rate_limit_store
    if url == "memory":
        return MemoryStore()
    if url.startswith("https://"):
        token = settings.upstash_redis_rest_token
        assert token is not None  # Settings refuses an Upstash URL without its token
        return UpstashStore(url, token.get_secret_value())
    return RedisStore(url, timeout_s=settings.rate_limit_store_timeout_s)
