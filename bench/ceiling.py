"""The throughput ceiling: requests/s before p95 TTFT passes 1 s, open loop, side by side.

Arrivals come at a fixed rate (bench/openloop.py: a request is sent at its scheduled time
whether or not the earlier ones are done), stepped up through RATES, each step
`max(MIN_REQUESTS, rate × STEP_S)` requests; a side stops one step after its first failed
step. A step passes when every request got its whole answer (200 and a complete stream;
a 503 with Retry-After is counted as shed, anything else as an error) and the p95 time to
the first answer text is at most 1 s. The ceiling is the highest rate passed with every
lower rate passed too.

Sides, in one run, against one upstream: the built-in local model in its own process,
paced at 20 ms a piece (as `python -m bench gateway`), straight (the baseline, with the
messages ragship sent it); LiteLLM's proxy in front of it, when installed
(bench/litellm_proxy.py); and ragship (`python -m app`, Redis store, a temporary
PostgreSQL, response cache off) once per configuration in BENCH_CEILING_RAGSHIP, a comma
list of BACKEND:WORKERS (default `torch:1,onnx:1,onnx:2`; EMBEDDING_BACKEND and
WEB_CONCURRENCY). The ONNX model is exported once per run into a temporary folder. Every
cap stays on, raised so that no request is refused by it (the ceiling is throughput, not
caps), and the requests rotate over USERS signed-in users.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.settings import LOCAL_MODEL_ID
from bench.ceiling_requests import direct, ragship
from bench.fixtures import (
    DOCS,
    ingest_corpus,
    onnx_model,
    shared_embedder,
    temp_database,
    temp_redis,
)
from bench.litellm_proxy import installed, litellm_proxy
from bench.openloop import SLO_S, Outcome, Step, ceiling, keep_going, offer, requests_for
from bench.procs import start_model, stop, wait_workers
from bench.sse_client import client
from bench.streams_procs import free_port, start, wait_up
from bench.table import Table, latency

NAME = "ceiling"
RATES = (2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96)  # offered requests/s, in order
STEP_S = 5.0
MIN_REQUESTS = 20  # p95 of 20 is the 19th: one stray answer does not fail a step
USERS = 16
WARM_UP = 4  # answers at once before a side's ladder (per worker for ragship)
TIMEOUT_S = 30.0  # one request, connect to last byte; past it the request is an error
DEFAULT_CONFIGS = "torch:1,onnx:1,onnx:2"


@dataclass(frozen=True)
class Config:
    """One ragship configuration: EMBEDDING_BACKEND and WEB_CONCURRENCY."""

    backend: str
    workers: int

    @property
    def label(self) -> str:
        return f"ragship {self.backend}, {self.workers} worker{'s' * (self.workers > 1)}"


def configs(spec: str) -> list[Config]:
    """Parse `torch:1,onnx:2` into configurations. Raises ValueError on anything else."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        backend, _, workers = part.partition(":")
        if backend not in ("torch", "onnx") or not workers.isdigit() or int(workers) < 1:
            raise ValueError(f"BENCH_CEILING_RAGSHIP: {part!r} is not BACKEND:WORKERS")
        out.append(Config(backend, int(workers)))
    return out


async def _ladder(send: Callable[[float], Coroutine[Any, Any, Outcome]]) -> list[Step]:
    steps: list[Step] = []
    for rate in RATES:
        steps.append(await offer(rate, requests_for(rate, STEP_S, MIN_REQUESTS), send))
        if not keep_going(steps):
            break
    return steps


async def _upstream_side(url: str, body: dict[str, Any], key: str = "") -> list[Step]:
    """Warm up with WARM_UP answers at once (a fresh proxy's first requests are slow), then
    the ladder. Raises RuntimeError when a warm-up answer fails."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with client(url, 1000, timeout_s=TIMEOUT_S, headers=headers) as http:
        loop = asyncio.get_running_loop()
        warm = [direct(http, body, loop.time()) for _ in range(WARM_UP)]
        if any(o.kind != "ok" for o in await asyncio.gather(*warm)):
            raise RuntimeError(f"warm-up of {url} failed")
        return await _ladder(lambda scheduled: direct(http, body, scheduled))


async def _ragship_side(url: str, users: list[tuple[httpx.Cookies, str]]) -> list[Step]:
    async with _Clients(url, users) as clients:
        turn = itertools.cycle(clients)
        return await _ladder(lambda scheduled: ragship(next(turn), scheduled))


class _Clients:
    """One HTTP client per signed-in user (its session cookie and CSRF token)."""

    def __init__(self, url: str, users: list[tuple[httpx.Cookies, str]]) -> None:
        self.clients = [
            client(url, 200, timeout_s=TIMEOUT_S, cookies=c,
                    headers={"Origin": url, "X-CSRF-Token": t})
            for c, t in users
        ]  # fmt: skip

    async def __aenter__(self) -> list[httpx.AsyncClient]:
        return self.clients

    async def __aexit__(self, *_: object) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


def _sign_in(url: str, n: int) -> list[tuple[httpx.Cookies, str]]:
    """Sign in `n` distinct dev users; their cookies and CSRF tokens."""
    users = []
    for i in range(n):
        with httpx.Client(base_url=url, timeout=60, headers={"Origin": url}) as c:
            c.post("/auth/dev-login", data={"email": f"ceiling-{i}@localhost.test"})
            users.append((httpx.Cookies(c.cookies), c.get("/api/me").json()["csrf_token"]))
    return users


async def _warm(url: str, users: list[tuple[httpx.Cookies, str]], n: int) -> None:
    """`n` answers at once (each worker's first requests load its lazy parts); raises
    RuntimeError when one fails."""
    async with _Clients(url, users[:n]) as clients:
        loop = asyncio.get_running_loop()
        outcomes = await asyncio.gather(*(ragship(c, loop.time()) for c in clients))
    if any(o.kind != "ok" for o in outcomes):
        raise RuntimeError(f"warm-up failed: {outcomes}")


def _app_env(config: Config, db_url: str, redis_url: str, model_url: str, onnx: Path | None,
             port: int) -> dict[str, str]:  # fmt: skip
    env = {
        **os.environ,
        "LOG_LEVEL": "warning",
        "ENV": "dev",
        "PORT": str(port),
        "DATABASE_URL": db_url,
        "LLM_BASE_URL": f"{model_url}/v1",
        "RATE_LIMIT_STORE": redis_url,
        "INGEST_ON_START": "false",
        "MIGRATE_ON_START": "false",
        "RESPONSE_CACHE": "false",  # the same question each time: measure the model, not replays
        "RATE_LIMIT_REQUESTS": "100000",
        "MAX_CONCURRENT_STREAMS": "10000",
        "USER_DAILY_CAP_USD": "100000",
        "GLOBAL_DAILY_CAP_USD": "100000",
        "MONTHLY_BUDGET_USD": "100000",
        "EMBEDDING_BACKEND": config.backend,
        "WEB_CONCURRENCY": str(config.workers),
    }
    if onnx is not None:
        env["EMBEDDING_ONNX_DIR"] = str(onnx)
    return env


def run() -> list[Table]:
    specs = configs(os.environ.get("BENCH_CEILING_RAGSHIP", DEFAULT_CONFIGS))
    results: list[tuple[str, list[Step] | None]] = []
    with ExitStack() as stack:
        db_url = stack.enter_context(temp_database())
        redis_url = stack.enter_context(temp_redis())
        ingest_corpus(db_url, shared_embedder(), [DOCS])
        onnx: Path | None = None
        if any(c.backend == "onnx" for c in specs):
            onnx = stack.enter_context(onnx_model())
        model_url = stack.enter_context(start_model())
        for i, config in enumerate(specs):
            port = free_port()
            app = start([sys.executable, "-m", "app"],
                         _app_env(config, db_url, redis_url, model_url, onnx, port))  # fmt: skip
            app_url = f"http://127.0.0.1:{port}"
            try:
                wait_up(app_url, app)
                wait_workers(app, config.workers)
                users = _sign_in(app_url, USERS)
                asyncio.run(_warm(app_url, users, WARM_UP * config.workers))
                if i == 0:
                    results += _baselines(model_url)
                results.append((config.label, asyncio.run(_ragship_side(app_url, users))))
            finally:
                stop(app)
    return [_table(results)]


def _baselines(model_url: str) -> list[tuple[str, list[Step] | None]]:
    """The direct and LiteLLM sides, sent the messages ragship sent for the question."""
    with httpx.Client(base_url=model_url) as m:
        messages = m.get("/_stats").json()["last_messages"]
    body = {"model": LOCAL_MODEL_ID, "messages": messages, "stream": True, "max_tokens": 512}
    out: list[tuple[str, list[Step] | None]] = [
        ("direct upstream", asyncio.run(_upstream_side(model_url, body)))
    ]
    if not installed():
        return [*out, ("LiteLLM proxy: not installed (pip install -e '.[bench]')", None)]
    with litellm_proxy(model_url, LOCAL_MODEL_ID) as (url, key):
        return [*out, ("LiteLLM proxy", asyncio.run(_upstream_side(url, body, key)))]


def _table(results: list[tuple[str, list[Step] | None]]) -> Table:
    table = Table(
        f"Throughput ceiling, open loop: offered requests/s until p95 TTFT > {SLO_S:.0f} s "
        "(local model, 20 ms a piece)",
        ["side", "offered/s", "sent", "ok", "TTFT p50 ms", "TTFT p95 ms", "shed", "errors",
         "completed/s", "pass"],
    )  # fmt: skip
    for label, steps in results:
        for step in steps or []:
            t = latency(step.ttft)
            verdict = "yes" if step.passes() else "NO"
            table.add(label, step.rate, step.sent, len(step.ttft), f"{t.p50 * 1000:.0f}",
                      f"{t.p95 * 1000:.0f}", step.shed, step.errors,
                      f"{step.completions_per_s:.1f}", verdict)  # fmt: skip
            if step.why:
                table.notes.append(f"{label} at {step.rate}/s: errors {dict(step.why)}")
        if steps is None:
            table.add(label, *["-"] * 9)
    base = next((ceiling(s) for label, s in results if label == "direct upstream" and s), None)
    for label, steps in results:
        if steps is None:
            continue
        top = ceiling(steps)
        shown = "none" if top is None else f"{top:g}" + ("+" if top == RATES[-1] else "")
        versus = f"x{top / base:.2f} of direct" if top and base else "-"
        later = [s.rate for s in steps if s.passes() and (top is None or s.rate > top)]
        if later:  # noise: a pass after a failure, shown but not counted
            versus += f" ({max(later):g} passed after a failure)"
        table.add(f"CEILING {label}", shown, "", "", "", "", "", "", versus, "")
    table.notes += [
        "TTFT from each request's scheduled send to its first answer text (ragship: the first "
        "`token` event, after the guardrail hold-back); completed/s = answers per s from the "
        "first answer's end to the last's (past the ceiling, queued answers end in bursts: "
        "it can then read higher than the side sustains)",
        f"a step is {STEP_S:g} s of arrivals (at least {MIN_REQUESTS} requests); pass = no "
        f"error, none shed, p95 TTFT <= {SLO_S:g} s; the ceiling is the highest rate passed "
        "with all lower rates passed ('+': the highest rate offered passed)",
        "everything (upstream, app, LiteLLM, PostgreSQL, Redis and this client) shares the "
        "machine's cores: the direct side's ceiling is that of the paced model process and "
        "this client, not of a real provider",
    ]
    return table
