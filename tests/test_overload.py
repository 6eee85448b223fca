"""Overload answered as overload, over real HTTP: a worker at its bound of admissions in
flight, or with its database pool drained, answers 503 with Retry-After, never a 500.

Admissions are held in flight the way they pile up in production: the test takes the row
lock on the global daily counter (as a long reservation would), so each admission waits in
its reservation, holding a pooled connection, until the test lets go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import Engine, text

from app.caps.budget import GLOBAL, periods
from app.localmodel.runner import BackgroundServer
from tests.conftest import eventually, scalar, sign_in
from tests.sse import parse_lines

QUESTION = {"message": "How do I ingest PDF files?"}
WAITING_ON_LOCKS = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
)


@contextmanager
def reservations_held(engine: Engine) -> Iterator[None]:
    """Every reservation waits (on the global daily counter's row lock) until the block ends."""
    day, _ = periods()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO spend_counters (scope, period, spent_usd, reserved_usd) "
                "VALUES (:g, :d, 0, 0) ON CONFLICT DO NOTHING"
            ),
            {"g": GLOBAL, "d": day},
        )
    with engine.connect() as conn:
        conn.execute(
            text("SELECT 1 FROM spend_counters WHERE scope = :g AND period = :d FOR UPDATE"),
            {"g": GLOBAL, "d": day},
        )
        try:
            yield
        finally:
            conn.rollback()


def waiting(engine: Engine) -> int:
    return int(scalar(engine, WAITING_ON_LOCKS))  # type: ignore[arg-type]


class Users:
    """Signed-in clients, one per user (each may open its own answers)."""

    def __init__(self, app: BackgroundServer) -> None:
        self.app = app
        self.cookies: dict[str, httpx.Cookies] = {}
        self.headers: dict[str, dict[str, str]] = {}

    def add(self, email: str) -> None:
        with sign_in(self.app.url, email) as client:
            self.cookies[email] = httpx.Cookies(client.cookies)
            self.headers[email] = dict(client.headers)

    def http(self, email: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.app.url,
            cookies=self.cookies[email],
            headers=self.headers[email],
            timeout=60,
        )


async def _ask(users: Users, email: str) -> tuple[int, dict[str, str], Any]:
    async with users.http(email) as http:
        response = await http.post("/api/chat", json=QUESTION)
        if response.headers["content-type"].startswith("text/event-stream"):
            return (
                response.status_code,
                dict(response.headers),
                parse_lines(response.text.splitlines()),
            )
        return response.status_code, dict(response.headers), response.json()


async def _until(condition: Any, what: str) -> None:
    await asyncio.to_thread(eventually, condition, what=what)


def test_past_the_admission_bound_503_with_retry_after_at_once_and_recorded(
    start_app, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(
        max_inflight_admissions=2,
        overload_retry_after_s=3,
        rate_limit_requests=1000,
        max_concurrent_streams=100,
    )
    users = Users(app)
    for email in ("held1@example.com", "held2@example.com", "over@example.com"):
        users.add(email)

    async def run() -> None:
        with reservations_held(db_engine):
            before = waiting(db_engine)
            held = [
                asyncio.create_task(_ask(users, email))
                for email in ("held1@example.com", "held2@example.com")
            ]
            await _until(lambda: waiting(db_engine) >= before + 2, "two admissions in flight")
            # The bound is reached: a third is refused while the two still wait.
            status, headers, body = await _ask(users, "over@example.com")
            assert status == 503, body
            assert body["layer"] == "overloaded" and headers["retry-after"] == "3"
            assert not any(task.done() for task in held)
        for status, _, events in await asyncio.gather(*held):
            assert status == 200 and events[-1][0] == "done", events
        # The two slots are free again.
        status, _, events = await _ask(users, "over@example.com")
        assert status == 200 and events[-1][0] == "done"

    asyncio.run(run())
    sql = (
        "SELECT count(*) FROM llm_calls c JOIN users u ON u.id = c.user_id "
        "WHERE u.email = 'over@example.com' AND c.admission = 'overloaded'"
    )
    eventually(lambda: scalar(db_engine, sql) == 1, what="the overload refusal recorded")


def test_a_drained_connection_pool_is_503_with_retry_after_never_500(
    start_app, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout_s=0.5,
        rate_limit_requests=1000,
        max_concurrent_streams=100,
    )
    users = Users(app)
    emails = [f"pool{n}@example.com" for n in range(4)]
    for email in emails:
        users.add(email)

    async def run() -> None:
        with reservations_held(db_engine):
            before = waiting(db_engine)
            first = asyncio.create_task(_ask(users, emails[0]))
            # Its reservation waits on the lock, holding the pool's only connection.
            await _until(lambda: waiting(db_engine) >= before + 1, "the pool's connection held")
            answers = await asyncio.gather(*(_ask(users, email) for email in emails[1:]))
            for status, headers, body in answers:
                assert status == 503, body
                assert body["layer"] == "overloaded" and int(headers["retry-after"]) >= 1
        status, _, events = await first
        assert status == 200 and events[-1][0] == "done", events

    asyncio.run(run())
