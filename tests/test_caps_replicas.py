"""Scale out, not up: three app processes over one PostgreSQL and one Redis hold the
per-user rate limit in total, and share sessions."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, LocalModel, eventually


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def replicas(
    db_url: str, redis_url: str, local_model: LocalModel, tmp_path: Path, corpus: object
) -> Iterator[list[str]]:
    ports = [_free_port() for _ in range(3)]
    env = {
        **os.environ,
        "ENV": "dev",
        "DATABASE_URL": db_url,
        "LLM_BASE_URL": local_model.base_url,
        "RATE_LIMIT_STORE": redis_url,
        "RATE_LIMIT_REQUESTS": "10",
        # About totals, not time: every request of the burst falls inside the window, and
        # the store answers within its limit, however busy the machine.
        "RATE_LIMIT_WINDOW_S": "3600",
        "RATE_LIMIT_STORE_TIMEOUT_S": "10",
        "MAX_CONCURRENT_STREAMS": "100",
        "INGEST_ON_START": "false",
        "STATUS_PROBE_ON_START": "false",  # no upstream call behind the test's back
        "LOCAL_MODEL_TOKEN_DELAY_S": "0",
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "warning",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=ROOT,
            env={**env, "PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def all_ready() -> bool:
        for proc in procs:
            assert proc.poll() is None, "a replica exited during start-up"
        try:
            return all(httpx.get(f"{u}/healthz", timeout=1).status_code == 200 for u in urls)
        except httpx.HTTPError:
            return False

    try:
        eventually(all_ready, timeout_s=120, what="three replicas to start")
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


async def _spread(urls: list[str], cookies: httpx.Cookies, csrf: str, n: int) -> list[int]:
    clients = [
        httpx.AsyncClient(
            base_url=u, cookies=cookies, headers={"Origin": u, "X-CSRF-Token": csrf}, timeout=60
        )
        for u in urls
    ]
    try:
        sends = [
            clients[i % len(clients)].post("/api/chat", json={"message": "How do I run the tests?"})
            for i in range(n)
        ]
        return [r.status_code for r in await asyncio.gather(*sends)]
    finally:
        for client in clients:
            await client.aclose()


def test_rate_limit_holds_in_total_across_three_processes(replicas: list[str]) -> None:
    first = replicas[0]
    with httpx.Client(base_url=first, headers={"Origin": first}) as client:
        assert (
            client.post("/auth/dev-login", data={"email": "spread@example.com"}).status_code == 303
        )
        csrf = client.get("/api/me").json()["csrf_token"]
        cookies = client.cookies
        # The session lives in PostgreSQL: every replica knows it.
        for url in replicas[1:]:
            me = httpx.get(f"{url}/api/me", cookies=cookies)
            assert me.json()["email"] == "spread@example.com"
    codes = asyncio.run(_spread(replicas, cookies, csrf, 200))
    assert codes.count(200) == 10 and codes.count(429) == 190
