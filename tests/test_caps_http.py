"""The cap chain end to end over HTTP: real app, real PostgreSQL, real Redis, local model."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Engine

from app.localmodel.runner import BackgroundServer
from tests.conftest import LocalModel, eventually, scalar, sign_in


@contextmanager
def user(app: BackgroundServer, email: str) -> Iterator[httpx.Client]:
    with sign_in(app.url, email) as client:
        yield client


async def _burst(client: httpx.Client, n: int, **body: Any) -> tuple[list[httpx.Response], float]:
    async with httpx.AsyncClient(
        base_url=str(client.base_url), cookies=client.cookies, headers=client.headers, timeout=60
    ) as http:
        started = time.perf_counter()
        sends = [
            http.post("/api/chat", json={"message": "How do I ingest PDF files?", **body})
            for _ in range(n)
        ]
        responses = await asyncio.gather(*sends)
        return list(responses), time.perf_counter() - started


def calls(engine: Engine, email: str, admission: str) -> int:
    sql = "SELECT count(*) FROM llm_calls c JOIN users u ON u.id = c.user_id WHERE u.email = :e AND c.admission = :a"
    return int(scalar(engine, sql, e=email, a=admission))  # type: ignore[arg-type]


def test_50_concurrent_requests_with_a_limit_of_10_admit_exactly_10(
    start_app,
    redis_url: str,
    local_model: LocalModel,
    db_engine: Engine,  # type: ignore[no-untyped-def]
) -> None:
    app = start_app(
        rate_limit_store=redis_url,
        rate_limit_requests=10,
        rate_limit_window_s=3600,  # the window cannot slide during the burst, however slow
        rate_limit_store_timeout_s=10,  # a busy loop must not pass for a dead store here
        max_concurrent_streams=100,
    )
    before = local_model.stats()["requests"]
    with user(app, "burst@example.com") as client:
        responses, elapsed = asyncio.run(_burst(client, 50))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 10 + [429] * 40
    refused = [r for r in responses if r.status_code == 429]
    assert all(
        r.json()["layer"] == "rate_limit" and int(r.headers["Retry-After"]) >= 1 for r in refused
    )
    assert all(r.headers["RateLimit-Remaining"] == "0" for r in refused)
    assert local_model.stats()["requests"] - before == 10
    assert calls(db_engine, "burst@example.com", "rate_limit") == 40
    assert calls(db_engine, "burst@example.com", "allowed") == 10
    print(f"50 concurrent requests answered in {elapsed * 1000:.0f} ms")


def test_daily_cap_refuses_with_reset_time_and_me_shows_the_budget(
    start_app,
    local_model: LocalModel,  # type: ignore[no-untyped-def]
) -> None:
    # Room for one reservation (~$0.0005: prompt + 512 output tokens), not two.
    app = start_app(user_daily_cap_usd="0.0006", rate_limit_requests=1000)
    with user(app, "thrifty@example.com") as client:
        assert client.get("/api/me").json()["budget"]["spent_today_usd"] == "0.000000"
        first = client.post("/api/chat", json={"message": "How do I run the tests?"})
        assert first.status_code == 200 and "remaining_today_usd" in first.text
        responses = [
            client.post("/api/chat", json={"message": "How do I run the tests?"}) for _ in range(3)
        ]
        refused = [r for r in responses if r.status_code == 429]
        assert refused, [r.status_code for r in responses]
        body = refused[0].json()
        assert body["layer"] == "user_daily_cap" and "resets at 00:00 UTC" in body["detail"]
        assert int(refused[0].headers["Retry-After"]) > 0
        budget = client.get("/api/me").json()["budget"]
        assert Decimal(budget["spent_today_usd"]) > 0 and budget["daily_cap_usd"] == "0.0006"


def test_kill_switch_pauses_everyone_at_once(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    app = start_app(admin_emails="boss@example.com", rate_limit_requests=1000)
    with user(app, "boss@example.com") as boss, user(app, "worker@example.com") as worker:
        assert boss.post("/api/admin/kill-switch", json={"paused": True}).json() == {"paused": True}
        try:
            before = local_model.stats()["requests"]
            refused = worker.post("/api/chat", json={"message": "How do I run the tests?"})
            assert refused.status_code == 503 and refused.json()["layer"] == "kill_switch"
            assert "paused by the operator" in refused.json()["detail"]
            assert worker.get("/api/me").json()["paused"] is True
            assert local_model.stats()["requests"] == before
            assert worker.post("/api/admin/kill-switch", json={"paused": False}).status_code == 403
        finally:
            boss.post("/api/admin/kill-switch", json={"paused": False})
        assert (
            worker.post("/api/chat", json={"message": "How do I run the tests?"}).status_code == 200
        )


def test_per_request_cost_ceiling_and_input_bounds(start_app) -> None:  # type: ignore[no-untyped-def]
    app = start_app(max_request_cost_usd="0.0001")
    with user(app, "big@example.com") as client:
        costly = client.post("/api/chat", json={"message": "How do I run the tests?"})
        assert costly.status_code == 413 and costly.json()["layer"] == "request_cost"
        too_many = client.post("/api/chat", json={"message": "hi", "max_tokens": 100_000})
        assert too_many.status_code == 413 and too_many.json()["layer"] == "input_bounds"


def test_store_down_refuses_fast_with_zero_upstream_calls(
    start_app, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(rate_limit_store="redis://127.0.0.1:1/0", rate_limit_store_timeout_s=0.5)
    before = local_model.stats()["requests"]
    with user(app, "nostore@example.com") as client:
        started = time.perf_counter()
        response = client.post("/api/chat", json={"message": "How do I run the tests?"})
        elapsed = time.perf_counter() - started
    assert response.status_code == 503 and response.json()["layer"] == "store_unavailable"
    # Refused at the store timeout, not hanging on the dead store (generous: a loaded CI).
    assert elapsed < 30
    assert local_model.stats()["requests"] == before


def test_1000_calls_four_at_a_time_balance_the_books_to_the_cent(start_app, docs_database) -> None:  # type: ignore[no-untyped-def]
    """A thousand answers, four in flight at a time (the user's stream limit raised to 4):
    the ledger, the counters and the messages agree to the cent, with nothing left reserved."""
    from app.db import make_sync_engine

    url = docs_database()
    engine = make_sync_engine(url)
    app = start_app(
        database_url=url,
        rate_limit_requests=100_000,
        user_daily_cap_usd=100,
        max_concurrent_streams=4,
    )

    def ask(client: httpx.Client, n: int) -> None:
        response = client.post(
            "/api/chat", json={"message": f"How do I run the tests? ({n})", "max_tokens": 16}
        )
        assert response.status_code == 200 and "event: done" in response.text, response.text

    with user(app, "ledger@example.com") as client, ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(ask, client, n) for n in range(1000)]:
            done.result()
    ledger = scalar(engine, "SELECT sum(cost_usd) FROM llm_calls WHERE admission = 'allowed'")
    counted = scalar(
        engine,
        "SELECT sum(spent_usd) FROM spend_counters "
        "WHERE (scope = 'global' OR scope LIKE 'global#%') AND length(period) = 10",  # all shards
    )
    per_message = scalar(engine, "SELECT sum(cost_usd) FROM messages WHERE role = 'assistant'")
    assert scalar(engine, "SELECT count(*) FROM llm_calls WHERE admission = 'allowed'") == 1000
    assert ledger == counted == per_message and Decimal(str(ledger)) > 0
    assert scalar(engine, "SELECT count(*) FROM reservations WHERE settled_at IS NULL") == 0
    assert scalar(engine, "SELECT sum(reserved_usd) FROM spend_counters") == 0
    print(f"1000 calls: ledger ${ledger} == counters ${counted}")
    engine.dispose()


async def _read_then_leave(client: httpx.Client, n: int, tokens: int) -> list[int]:
    """n clients, each reading `tokens` token events and then dropping the connection.

    A raw socket client: it closes the TCP connection mid-answer, as a closed browser tab does.
    """
    url = httpx.URL(str(client.base_url))
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    body = json.dumps({"message": "How do I ingest PDF files?"}).encode()
    head = (
        f"POST /api/chat HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Cookie: {cookie}\r\nOrigin: {client.headers['Origin']}\r\n"
        f"X-CSRF-Token: {client.headers['X-CSRF-Token']}\r\n\r\n"
    ).encode()

    async def one() -> int:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(head + body)
        seen = 0
        while seen < tokens:
            line = await reader.readline()
            if not line:
                break
            seen += line.strip() == b"event: token"
        writer.close()
        await writer.wait_closed()
        return seen

    return list(await asyncio.gather(*(one() for _ in range(n))))


def test_100_streams_abandoned_after_5_tokens_are_charged_and_closed_upstream(
    start_app,
    local_model: LocalModel,
    db_engine: Engine,  # type: ignore[no-untyped-def]
) -> None:
    app = start_app(rate_limit_requests=1000, max_concurrent_streams=200, user_daily_cap_usd=10)
    # Half a second a word: the clients leave after 5 words, long before anyone's 40th.
    local_model.fault("slow", delay_s=0.5, times=100)
    before = local_model.stats()
    with user(app, "leaver@example.com") as client:
        seen = asyncio.run(_read_then_leave(client, 100, 5))
    assert seen == [5] * 100
    sql = (
        "SELECT count(*) FROM llm_calls c JOIN users u ON u.id = c.user_id "
        "WHERE u.email = 'leaver@example.com' AND c.status = 'cancelled'"
    )
    eventually(lambda: scalar(db_engine, sql) == 100, what="100 cancelled calls settled")
    rows = scalar(
        db_engine,
        "SELECT min(output_tokens) || ',' || max(output_tokens) || ',' || min(cost_usd) "
        "FROM llm_calls c JOIN users u ON u.id = c.user_id WHERE u.email = 'leaver@example.com'",
    )
    min_out, max_out, min_cost = str(rows).split(",")
    assert int(min_out) >= 5 and int(max_out) < 40 and Decimal(min_cost) > 0
    eventually(
        lambda: local_model.stats()["disconnects"] - before["disconnects"] == 100,  # type: ignore[operator]
        what="the upstream to see 100 disconnects",
    )
    assert local_model.stats()["completed_streams"] == before["completed_streams"]
    # Every one of the leaver's reservations is settled (the database is shared with the
    # module's other tests, whose apps may still be settling their own).
    unsettled = (
        "SELECT count(*) FROM reservations r JOIN users u ON u.id = r.user_id "
        "WHERE u.email = 'leaver@example.com' AND r.settled_at IS NULL"
    )
    assert scalar(db_engine, unsettled) == 0


async def _leave_after_first_event(client: httpx.Client) -> None:
    url = httpx.URL(str(client.base_url))
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    body = json.dumps({"message": "How do I ingest PDF files?"}).encode()
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(
        (
            f"POST /api/chat HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Cookie: {cookie}\r\nOrigin: {client.headers['Origin']}\r\n"
            f"X-CSRF-Token: {client.headers['X-CSRF-Token']}\r\n\r\n"
        ).encode()
        + body
    )
    while (line := await reader.readline()) and line.strip() != b"event: meta":
        pass
    writer.close()
    await writer.wait_closed()


def test_leaving_at_the_first_event_settles_and_frees_the_stream(
    start_app, local_model: LocalModel, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(max_concurrent_streams=1, rate_limit_requests=1000)
    local_model.fault("stall", delay_s=600)  # the upstream has not answered when the client leaves
    with user(app, "impatient@example.com") as client:
        asyncio.run(_leave_after_first_event(client))
        sql = (
            "SELECT count(*) FROM reservations r JOIN users u ON u.id = r.user_id "
            "WHERE u.email = 'impatient@example.com' AND r.settled_at IS NULL"
        )
        eventually(lambda: scalar(db_engine, sql) == 0, what="the abandoned call to settle")
        local_model.clear()
        # The only stream lease came back: the next question is admitted at once.
        assert (
            client.post("/api/chat", json={"message": "How do I run the tests?"}).status_code == 200
        )
