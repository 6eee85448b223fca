"""The streams benchmark's client side: N streams held at once, each failure recorded by kind.

Two targets: ragship's `/api/chat` (Server-Sent Events; a 503 with `Retry-After` is retried
after the time it names, as a client should, and counted), and the upstream's
`/v1/chat/completions` called directly with the request ragship sends it (the baseline:
how long the paced model itself takes at that concurrency, without ragship in between).

A failure is recorded as a short kind (for the summary) with one full example: the SSE
`error` event's kind and message, the HTTP status and body, or the exception's type and
message, with the seconds it came after the request started.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import psutil

from bench.streams_procs import TreeSample, sample_tree

PROBE_EVERY_S = 0.2


@dataclass
class Hold:
    """What one level measured. Durations and probe times in seconds; `held` is, per stream
    read to its end, when its answer began (the 200 arrived) and ended, on `time.monotonic`
    (CLOCK_MONOTONIC on Linux: one clock for every process on the machine)."""

    durations: list[float] = field(default_factory=list)
    held: list[tuple[float, float]] = field(default_factory=list)
    done: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    retried: int = 0
    healthz: list[float] = field(default_factory=list)
    client_lag: list[float] = field(default_factory=list)
    trees: list[TreeSample] = field(default_factory=list)
    probe_failures: Counter[str] = field(default_factory=Counter)

    def fail(self, kind: str, detail: str, started: float) -> None:
        self.errors[kind] += 1
        after = time.perf_counter() - started
        self.examples.setdefault(kind, f"{detail[:300]} (after {after:.1f}s)")


def _exception_kind(err: Exception) -> tuple[str, str]:
    return type(err).__name__, f"{type(err).__name__}: {err}"


@dataclass(frozen=True)
class User:
    """A signed-in user's session cookies and CSRF header."""

    cookies: httpx.Cookies
    headers: dict[str, str]


async def sign_in_users(url: str, count: int, *, parallel: int = 20) -> list[User]:
    """`count` users signed in with dev sign-in (`bench-streams-N@localhost.test`)."""
    gate = asyncio.Semaphore(parallel)

    async def one(n: int) -> User:
        async with gate, httpx.AsyncClient(base_url=url, timeout=120, headers={"Origin": url}) as c:
            signed = await c.post(
                "/auth/dev-login", data={"email": f"bench-streams-{n}@localhost.test"}
            )
            if signed.status_code not in (200, 303):
                raise RuntimeError(f"dev sign-in failed: {signed.status_code} {signed.text}")
            csrf = (await c.get("/api/me")).json()["csrf_token"]
            return User(httpx.Cookies(c.cookies), {"Origin": url, "X-CSRF-Token": csrf})

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def one_chat(http: httpx.AsyncClient, hold: Hold, *, question: str) -> None:
    """One answer from ragship, read to its last event; retried after a 503's Retry-After."""
    while True:
        started = time.perf_counter()
        try:
            async with http.stream("POST", "/api/chat", json={"message": question}) as response:
                if response.status_code == 503 and "retry-after" in response.headers:
                    hold.retried += 1
                    await asyncio.sleep(float(response.headers["retry-after"]))
                    continue
                if response.status_code != 200:
                    body = (await response.aread()).decode(errors="replace")
                    hold.fail(f"HTTP {response.status_code}", body, started)
                    return
                last, data, tokens, opened = "", "", 0, time.monotonic()
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        last = line[6:].strip()
                        tokens += last == "token"
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                if last == "done":
                    hold.done += 1
                    hold.durations.append(time.perf_counter() - started)
                    hold.held.append((opened, time.monotonic()))
                elif last == "error":
                    kind = str(json.loads(data).get("kind")) if data.startswith("{") else "?"
                    hold.fail(f"SSE error {kind}", f"after {tokens} tokens: {data}", started)
                else:
                    hold.fail(f"ended on {last or 'nothing'}", f"after {tokens} tokens", started)
        except httpx.HTTPError as err:
            hold.fail(*_exception_kind(err), started)
        return


async def one_direct(http: httpx.AsyncClient, hold: Hold, *, request: dict[str, Any]) -> None:
    """One streamed completion straight from the upstream, read to `data: [DONE]`."""
    started = time.perf_counter()
    try:
        async with http.stream("POST", "/v1/chat/completions", json=request) as response:
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")
                hold.fail(f"HTTP {response.status_code}", body, started)
                return
            finished, opened = False, time.monotonic()
            async for line in response.aiter_lines():
                finished = finished or line.strip() == "data: [DONE]"
            if finished:
                hold.done += 1
                hold.durations.append(time.perf_counter() - started)
                hold.held.append((opened, time.monotonic()))
            else:
                hold.fail("no [DONE]", "the stream ended without data: [DONE]", started)
    except httpx.HTTPError as err:
        hold.fail(*_exception_kind(err), started)


async def watch(url: str, tree: psutil.Process | None, hold: Hold, stop: asyncio.Event) -> None:
    """Every PROBE_EVERY_S: time `GET url/healthz` (when `tree` is the app), sample the
    app's processes, and measure how late this client's own loop woke up (its lag)."""
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=url, timeout=30) as probe:
        while not stop.is_set():
            if tree is not None:
                started = time.perf_counter()
                try:
                    await probe.get("/healthz")
                    hold.healthz.append(time.perf_counter() - started)
                except httpx.HTTPError as err:  # a probe, not a stream: noted, not counted
                    hold.probe_failures[type(err).__name__] += 1
                hold.trees.append(sample_tree(tree))
            asleep = loop.time()
            await asyncio.sleep(PROBE_EVERY_S)
            hold.client_lag.append(max(loop.time() - asleep - PROBE_EVERY_S, 0.0))


async def hold_streams(
    url: str,
    streams: Sequence[Callable[[Hold], Awaitable[None]]],
    tree: psutil.Process | None = None,
    ramp_s: float = 0.0,
) -> Hold:
    """Run every stream while `watch` samples; return when all have ended. Stream i starts
    ``ramp_s * i / len(streams)`` seconds in (0: all at once); each one's duration is
    timed from its own start."""
    hold = Hold()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(url, tree, hold, stop))

    async def start(i: int, stream: Callable[[Hold], Awaitable[None]]) -> None:
        if ramp_s:
            await asyncio.sleep(ramp_s * i / len(streams))
        await stream(hold)

    await asyncio.gather(*(start(i, stream) for i, stream in enumerate(streams)))
    stop.set()
    await watcher
    return hold


def _limits(n: int) -> httpx.Limits:
    return httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)


async def hold_direct(url: str, n: int, request: dict[str, Any], ramp_s: float = 0.0) -> Hold:
    """`n` completions at once straight from the upstream at `url`."""
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=_limits(n)) as http:
        streams = [partial(one_direct, http, request=request) for _ in range(n)]
        return await hold_streams(url, streams, ramp_s=ramp_s)


async def hold_chat(
    url: str,
    n: int,
    users: list[User],
    question: str,
    tree: psutil.Process | None = None,
    ramp_s: float = 0.0,
) -> Hold:
    """`n` answers at once from ragship, stream i asked by user i mod len(users); the users'
    clients share one connection pool that fits every stream."""
    transport = httpx.AsyncHTTPTransport(limits=_limits(n))
    clients = [
        httpx.AsyncClient(
            base_url=url, transport=transport, cookies=u.cookies, headers=u.headers, timeout=300
        )
        for u in users
    ]
    try:
        streams = [
            partial(one_chat, clients[i % len(clients)], question=question) for i in range(n)
        ]
        return await hold_streams(url, streams, tree, ramp_s=ramp_s)
    finally:
        await transport.aclose()  # the clients' one transport
