"""Scale out, not up: three app processes over one PostgreSQL and one Redis hold the
per-user rate limit in total, and share sessions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.app_process import app_processes
from tests.conftest import LocalModel


@pytest.fixture
def replicas(
    db_url: str,
    redis_url: str,
    local_model: LocalModel,
    tmp_path: Path,
    corpus: object,
    onnx_env: dict[str, str],
) -> Iterator[list[str]]:
    env = {
        **onnx_env,
        "DATABASE_URL": db_url,
        "LLM_BASE_URL": local_model.base_url,
        "RATE_LIMIT_STORE": redis_url,
        "RATE_LIMIT_REQUESTS": "10",
        # About totals, not time: every request of the burst falls inside the window, and
        # the store answers within its limit, however busy the machine.
        "RATE_LIMIT_WINDOW_S": "3600",
        "RATE_LIMIT_STORE_TIMEOUT_S": "10",
        "MAX_CONCURRENT_STREAMS": "100",
        "STATUS_PROBE_ON_START": "false",  # no upstream call behind the test's back
        "LOCAL_MODEL_TOKEN_DELAY_S": "0",
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "warning",
    }
    with app_processes([env] * 3, timeout_s=240) as apps:  # three start at once
        yield [app.url for app in apps]


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
