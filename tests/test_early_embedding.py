"""The question's embedding starts before the sign-in when no other is in flight
(app/rag/query_embedding.py, app/routes/chat.py `early_embedding`)."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from app.auth.recent import RecentCredentials
from app.auth.sessions import SESSION_COOKIE
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from app.rag.embedder import Embedder
from app.rag.query_embedding import QueryEmbeddings
from app.services import Services
from tests.conftest import LocalModel, eventually, make_settings, sign_in
from tests.sse import read_events

QUESTION = "How do I ingest PDF files?"


@pytest.fixture
def app_and_services(
    db_url: str, local_model: LocalModel, embedder: Embedder, corpus: object
) -> Iterator[tuple[BackgroundServer, Services]]:
    app = create_app(
        make_settings(database_url=db_url, llm_base_url=local_model.base_url), embedder=embedder
    )
    server = BackgroundServer(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            eventually(lambda: c.get("/healthz").status_code == 200, what="the app up")
        yield server, app.state.services
    finally:
        server.stop()


def test_embedding_runs_while_the_sign_in_lookup_waits(
    app_and_services: tuple[BackgroundServer, Services], db_engine: Engine
) -> None:
    server, services = app_and_services
    embeddings = services.query_embeddings
    with sign_in(server.url, "early@example.com") as client:
        before = embeddings.started
        answer: list[httpx.Response] = []
        with db_engine.connect() as lock:
            # Every sign-in lookup now waits for this transaction to end.
            lock.execute(text("LOCK TABLE auth_sessions IN ACCESS EXCLUSIVE MODE"))
            asking = threading.Thread(
                target=lambda: answer.append(client.post("/api/chat", json={"message": QUESTION}))
            )
            asking.start()
            try:
                eventually(lambda: embeddings.started == before + 1, what="the early embedding")
                eventually(lambda: embeddings.in_flight == 0, what="the embedding done")
                assert not answer  # still signing in
            finally:
                lock.rollback()
        asking.join(timeout=60)
    (response,) = answer
    assert response.status_code == 200, response.text
    assert [name for name, _ in read_events(response)][-1] == "done"
    assert embeddings.started == before + 1  # the early vector was the one used


def test_no_early_embedding_for_a_request_the_route_refuses(
    app_and_services: tuple[BackgroundServer, Services],
) -> None:
    server, services = app_and_services
    embeddings = services.query_embeddings
    before = embeddings.started
    asked = {"message": QUESTION}
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        assert anonymous.post("/api/chat", json=asked).status_code == 401
        # Made-up credentials of the right shape: never signed in here, so nothing starts.
        forged = {"Authorization": "Bearer rs_" + "x" * 40}
        assert anonymous.post("/api/chat", json=asked, headers=forged).status_code == 401
        anonymous.cookies.set(SESSION_COOKIE, "y" * 43)
        assert anonymous.post("/api/chat", json=asked).status_code == 401
    with sign_in(server.url, "early@example.com") as client:
        assert client.post("/api/chat", json={"message": ""}).status_code == 422
        not_json = {"content-type": "text/plain"}
        assert (
            client.post("/api/chat", content=json.dumps(asked), headers=not_json).status_code == 415
        )
        json_type = {"content-type": "application/json"}
        assert client.post("/api/chat", content=b"{not json", headers=json_type).status_code == 422
        too_deep = b"[" * 5000  # past json's recursion limit: 400 from FastAPI's own parse
        assert client.post("/api/chat", content=too_deep, headers=json_type).status_code == 400
        too_long = "x" * (services.settings.max_message_chars + 1)
        assert client.post("/api/chat", json={"message": too_long}).status_code == 413
        too_many = services.settings.llm_max_tokens + 1
        assert client.post("/api/chat", json={**asked, "max_tokens": too_many}).status_code == 413
    assert embeddings.started == before


def _one_held_thread() -> threading.Event:
    """The running loop's default executor made one thread, busy until the event is set
    (set it in a `finally`: the loop's end waits for the executor)."""
    executor = ThreadPoolExecutor(1)
    asyncio.get_running_loop().set_default_executor(executor)
    release = threading.Event()
    executor.submit(release.wait)
    return release


def test_starts_early_only_when_no_other_embedding_is_in_flight(embedder: Embedder) -> None:
    async def check() -> None:
        release = _one_held_thread()  # a started embedding waits in the executor's queue
        embeddings = QueryEmbeddings()
        try:
            waiting = embeddings.start(embedder, "first")
            assert embeddings.in_flight == 1
            assert embeddings.start_if_idle(embedder, "second") is None
        finally:
            release.set()
        assert await waiting.vector() == embedder.embed_one("first")
        assert embeddings.in_flight == 0
        early = embeddings.start_if_idle(embedder, "second")
        assert early is not None and early.text == "second"
        assert await early.vector() == embedder.embed_one("second")
        assert embeddings.started == 2

    asyncio.run(check())


def test_an_unused_embedding_that_failed_is_dropped_quietly(embedder: Embedder) -> None:
    reported: list[dict[str, Any]] = []

    async def check() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: reported.append(context)
        )
        embeddings = QueryEmbeddings()
        awaited = embeddings.start(embedder, None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="Unsupported input type"):
            await awaited.vector()
        unused = embeddings.start(embedder, None)  # type: ignore[arg-type]
        await asyncio.wait([unused.future])  # done, its error not read here
        assert embeddings.in_flight == 0
        del unused
        gc.collect()

    asyncio.run(check())
    assert reported == []


def test_a_cancelled_wait_leaves_the_embedding_to_finish(embedder: Embedder) -> None:
    async def check() -> None:
        release = _one_held_thread()  # a started embedding waits in the executor's queue
        embeddings = QueryEmbeddings()
        try:
            started = embeddings.start(embedder, "first")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0):  # cancels the wait once it has begun
                    await started.vector()
        finally:
            release.set()
        await asyncio.wait([started.future])
        assert not started.future.cancelled()  # the queued job ran all the same
        assert embeddings.in_flight == 0
        assert embeddings.start_if_idle(embedder, "second") is not None

    asyncio.run(check())


def test_recent_credentials_expire_and_are_bounded() -> None:
    now = [0.0]
    recent = RecentCredentials(size=2, ttl_s=10, clock=lambda: now[0])
    alice, bob = uuid.uuid4(), uuid.uuid4()
    recent.signed_in("a", alice)
    assert "a" in recent and "b" not in recent
    assert recent.user_of("a") == alice and recent.user_of("b") is None
    now[0] = 9.9
    assert "a" in recent
    now[0] = 10.0
    assert "a" not in recent and recent.user_of("a") is None  # expired
    recent.signed_in("a", alice)
    recent.signed_in("b", bob)
    recent.signed_in("c", bob)  # past the size: the least recent, "a", goes
    assert "a" not in recent and "b" in recent and "c" in recent
    assert recent.user_of("b") == bob
