"""What the rate limiter tells a caller, whichever store is behind it: the RateLimit
headers, each refusal's message and retry time, the stream lease, and a store that is
down. The in-memory store here; tests/test_caps_store.py runs Redis and Upstash."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from app.caps.ratelimit import RateLimiter, StreamLease
from app.caps.redis_store import RedisStore
from app.caps.refusal import CONCURRENCY, RATE_LIMIT, STORE_DOWN, CapRefused
from app.caps.store import MemoryStore
from tests.conftest import make_settings


def _limiter(**settings: object) -> RateLimiter:
    return RateLimiter(MemoryStore(), make_settings(**settings))


def test_an_admitted_request_gets_the_ratelimit_headers_and_its_own_stream_lease() -> None:
    limiter = _limiter(rate_limit_requests=3, rate_limit_window_s=60, max_concurrent_streams=5)
    user = uuid.uuid4()

    async def run() -> list[StreamLease]:
        return [await limiter.admit(user) for _ in range(2)]

    first, second = asyncio.run(run())
    assert first.key == second.key == f"streams:{user}"
    assert len(first.member) == 32 and first.member != second.member
    assert first.headers == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "2",
        "RateLimit-Policy": "3;w=60",
    }
    assert second.headers["RateLimit-Remaining"] == "1"


@pytest.mark.parametrize(
    ("window_s", "words"), [(60, "minute"), (120, "2 minutes"), (90, "90 seconds")]
)
def test_over_the_rate_limit_the_refusal_says_how_many_per_what_and_when_to_retry(
    window_s: int, words: str
) -> None:
    limiter = _limiter(rate_limit_requests=1, rate_limit_window_s=window_s)
    user = uuid.uuid4()

    async def run() -> CapRefused:
        await limiter.admit(user)
        with pytest.raises(CapRefused) as refused:
            await limiter.admit(user)
        return refused.value

    refusal = asyncio.run(run())
    retry = refusal.retry_after_s
    assert retry is not None and 1 <= retry <= window_s  # whole seconds, rounded up
    assert (refusal.layer, refusal.status) == (RATE_LIMIT, 429)
    assert refusal.message == f"You can send 1 messages every {words}. Please wait {retry}s."
    assert refusal.headers == {
        "RateLimit-Limit": "1",
        "RateLimit-Remaining": "0",
        "RateLimit-Policy": f"1;w={window_s}",
        "RateLimit-Reset": str(retry),
    }


def test_over_the_stream_limit_the_refusal_says_so_and_a_released_lease_frees_a_place() -> None:
    limiter = _limiter(rate_limit_requests=100, max_concurrent_streams=2)
    user = uuid.uuid4()

    async def run() -> tuple[CapRefused, StreamLease]:
        first = await limiter.admit(user)
        await limiter.admit(user)
        with pytest.raises(CapRefused) as refused:
            await limiter.admit(user)
        await limiter.release(first)
        await limiter.release(StreamLease())  # a lease never taken (store down, failing open)
        return refused.value, await limiter.admit(user)

    refusal, again = asyncio.run(run())
    assert (refusal.layer, refusal.status, refusal.retry_after_s) == (CONCURRENCY, 429, 1)
    assert refusal.message == "You already have 2 answers in progress: wait for one to finish."
    assert refusal.headers["RateLimit-Remaining"] == "97"
    assert again.key == f"streams:{user}"


def _dead_store() -> RedisStore:
    return RedisStore("redis://127.0.0.1:1/0", timeout_s=0.5)  # nothing listens there


def test_a_store_that_is_down_refuses_with_a_retry_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> CapRefused:
        store = _dead_store()
        try:
            with pytest.raises(CapRefused) as refused:
                await RateLimiter(store, make_settings()).admit(uuid.uuid4())
            return refused.value
        finally:
            await store.close()

    with caplog.at_level(logging.WARNING, logger="ragship.caps"):
        refusal = asyncio.run(run())
    assert (refusal.layer, refusal.status, refusal.retry_after_s) == (STORE_DOWN, 503, 5)
    assert refusal.message == (
        "Requests are paused for a moment: the rate limiter is unavailable. "
        "Please try again shortly."
    )
    [record] = caplog.records
    assert record.levelname == "ERROR"
    assert record.getMessage().startswith("rate-limit store unavailable, refusing: ")
    assert "ConnectionError" in record.getMessage()  # what failed, not only that it did


def test_a_store_that_is_down_lets_requests_through_when_configured_to_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> StreamLease:
        store = _dead_store()
        try:
            return await RateLimiter(store, make_settings(rate_limit_fail_open=True)).admit(
                uuid.uuid4()
            )
        finally:
            await store.close()

    with caplog.at_level(logging.WARNING, logger="ragship.caps"):
        lease = asyncio.run(run())
    assert lease == StreamLease()  # no key: nothing to give back
    [record] = caplog.records
    assert record.levelname == "ERROR"
    assert record.getMessage().startswith("rate-limit store unavailable, failing open: ")
    assert "ConnectionError" in record.getMessage()


def test_a_lease_that_cannot_be_given_back_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The stream has ended either way; the lease expires with its TTL."""

    async def run() -> None:
        store = _dead_store()
        try:
            await RateLimiter(store, make_settings()).release(StreamLease("streams:u", "m1"))
        finally:
            await store.close()

    with caplog.at_level(logging.WARNING, logger="ragship.caps"):
        asyncio.run(run())
    [record] = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith("could not release stream lease m1: ")
    assert "ConnectionError" in record.getMessage()


def test_a_store_that_fails_at_the_stream_lease_refuses_and_logs_why(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The window check answered, then taking the lease failed: refused as store down too,
    and the log names that failure (here the real Redis refusing a key of the wrong type)."""
    user = uuid.uuid4()

    async def run() -> CapRefused:
        store = RedisStore(redis_url, timeout_s=2)
        try:
            await store._redis.set(f"streams:{user}", "not a lease set")
            with pytest.raises(CapRefused) as refused:
                await RateLimiter(store, make_settings()).admit(user)
            return refused.value
        finally:
            await store.close()

    with caplog.at_level(logging.WARNING, logger="ragship.caps"):
        refusal = asyncio.run(run())
    assert (refusal.layer, refusal.status) == (STORE_DOWN, 503)
    [record] = caplog.records
    assert record.getMessage().startswith("rate-limit store unavailable, refusing: ")
    assert "ResponseError" in record.getMessage()
