"""Concurrent answers held open: 200, 500 and 1,000 streams on one worker process.

The app runs as its own process (`python -m app`, one worker) so its memory, file
descriptors and event loop are its own; the built-in local model runs in another process
with a per-token delay, so each answer is paced to a known length. N answers are opened
at once by one user (limits raised to N); a 503 with `Retry-After` (the overload bound,
MAX_INFLIGHT_ADMISSIONS) is retried after the time it names, as a client should, and
counted. While the streams are held, `/healthz` is timed every 0.2 s (the event loop's
lag as a client sees it) and the app's RSS and open file descriptors are sampled.

Reported per N: answers finished with `done`, errors (any other status or ending), 503s
retried, stream duration p50/p95 against the paced length, /healthz p50/p95, and the
app's RSS and descriptors at the peak against idle (per stream).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
import psutil

from bench.fixtures import DOCS, ROOT, ingest_corpus, shared_embedder, temp_database
from bench.table import Table, latency

NAME = "streams"
LEVELS = (200, 500, 1000)
TOKEN_DELAY_S = 0.25
QUESTION = "How do I ingest PDF files?"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _wait(
    url: str, proc: subprocess.Popen[bytes], path: str = "/healthz", timeout_s: float = 300
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited during start-up")
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start in {timeout_s:.0f}s")


@dataclass
class Hold:
    durations: list[float] = field(default_factory=list)
    done: int = 0
    errors: list[str] = field(default_factory=list)
    retried: int = 0
    healthz: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)


async def _one(http: httpx.AsyncClient, hold: Hold) -> None:
    while True:
        started = time.perf_counter()
        try:
            async with http.stream("POST", "/api/chat", json={"message": QUESTION}) as response:
                if response.status_code == 503 and "retry-after" in response.headers:
                    hold.retried += 1
                    await asyncio.sleep(float(response.headers["retry-after"]))
                    continue
                last = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        last = line[6:].strip()
                if response.status_code == 200 and last == "done":
                    hold.done += 1
                    hold.durations.append(time.perf_counter() - started)
                else:
                    hold.errors.append(f"{response.status_code} {last}")
        except httpx.HTTPError as err:
            hold.errors.append(type(err).__name__)
        return


async def _watch(url: str, app: psutil.Process, hold: Hold, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as probe:
        while not stop.is_set():
            started = time.perf_counter()
            await probe.get("/healthz")
            hold.healthz.append(time.perf_counter() - started)
            hold.rss.append(app.memory_info().rss)
            hold.fds.append(app.num_fds())
            await asyncio.sleep(0.2)


async def _hold(url: str, app: psutil.Process, n: int, cookies: httpx.Cookies, csrf: str) -> Hold:
    hold = Hold()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    headers = {"Origin": url, "X-CSRF-Token": csrf}
    async with httpx.AsyncClient(
        base_url=url, cookies=cookies, headers=headers, timeout=300, limits=limits
    ) as http:
        watcher = asyncio.create_task(_watch(url, app, hold, stop))
        await asyncio.gather(*(_one(http, hold) for _ in range(n)))
        stop.set()
        await watcher
    return hold


def run() -> list[Table]:
    return [measure(LEVELS)]


def measure(levels: tuple[int, ...]) -> Table:
    embedder = shared_embedder()
    table = Table(
        f"Answers held open at once, one worker, local model paced at {TOKEN_DELAY_S}s a piece",
        ["streams", "done", "errors", "503 retried", "paced s", "p50 s", "p95 s",
         "healthz p50 ms", "healthz p95 ms", "RSS MiB idle/peak", "fds idle/peak"],
    )  # fmt: skip
    with temp_database() as url:
        ingest_corpus(url, embedder, [DOCS])
        model_port, app_port = _free_port(), _free_port()
        env = {**os.environ, "LOG_LEVEL": "warning"}
        model = _start(
            [sys.executable, "-m", "uvicorn", "--factory", "bench.streams:paced_model",
             "--port", str(model_port), "--log-level", "warning"], env,
        )  # fmt: skip
        top = max(levels)
        app_env = {
            **env,
            "ENV": "dev",
            "PORT": str(app_port),
            "DATABASE_URL": url,
            "LLM_BASE_URL": f"http://127.0.0.1:{model_port}/v1",
            "INGEST_ON_START": "false",
            "MIGRATE_ON_START": "false",
            "RATE_LIMIT_REQUESTS": str(20 * top),
            "MAX_CONCURRENT_STREAMS": str(top),
            "USER_DAILY_CAP_USD": "1000",
            # Every answer from the paced model: with the cache on, the held streams would
            # replay the first answer at once instead of streaming at the model's pace.
            "RESPONSE_CACHE": "false",
        }
        app = _start([sys.executable, "-m", "app"], app_env)
        try:
            app_url, model_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{model_port}"
            _wait(model_url, model, "/v1/models")
            _wait(app_url, app)
            with httpx.Client(base_url=app_url, timeout=60, headers={"Origin": app_url}) as c:
                c.post("/auth/dev-login", data={"email": "streams@localhost.test"})
                csrf = c.get("/api/me").json()["csrf_token"]
                c.headers["X-CSRF-Token"] = csrf
                started = time.perf_counter()
                answer = c.post("/api/chat", json={"message": QUESTION})
                paced = time.perf_counter() - started
                assert answer.status_code == 200, answer.text
                cookies = httpx.Cookies(c.cookies)
            process = psutil.Process(app.pid)
            for n in levels:
                idle_rss, idle_fds = process.memory_info().rss, process.num_fds()
                hold = asyncio.run(_hold(app_url, process, n, cookies, csrf))
                took = latency(hold.durations)
                health = latency(hold.healthz)
                table.add(
                    n, hold.done, len(hold.errors), hold.retried, f"{paced:.1f}",
                    f"{took.p50:.1f}", f"{took.p95:.1f}",
                    f"{health.p50 * 1000:.0f}", f"{health.p95 * 1000:.0f}",
                    f"{idle_rss / 2**20:.0f}/{max(hold.rss, default=0) / 2**20:.0f}",
                    f"{idle_fds}/{max(hold.fds, default=0)}",
                )  # fmt: skip
                if hold.errors:
                    table.notes.append(f"{n}: errors {sorted(set(hold.errors))[:5]}")
        finally:
            for proc in (app, model):
                proc.terminate()
                proc.wait(timeout=60)
    table.notes.append("paced s: one answer alone, same question, measured before the holds")
    return table


def paced_model():  # type: ignore[no-untyped-def]
    """The local model with the bench's per-piece delay (uvicorn --factory)."""
    from app.localmodel.server import create_local_model

    return create_local_model(token_delay_s=TOKEN_DELAY_S)
