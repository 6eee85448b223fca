"""The response cache over HTTP: a repeated first-turn question is served at $0 without an
upstream call, recorded with cache_hit, and an ingest that changes the corpus invalidates it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from psycopg import pq
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.cache.responses import CachedAnswer, CacheKey, CacheKeyParts, corpus_version, normalise
from app.db import autocommit_scope, make_async_engine
from app.localmodel.runner import BackgroundServer
from app.prepare import search_or_cached
from app.rag.corpus_fit import CorpusFit
from app.rag.embedder import Embedder
from ingest.pipeline import IngestReport, ingest_paths
from tests.conftest import DOCS, LocalModel, make_settings, sign_in
from tests.corpus_app import corpus_app
from tests.sse import chat

QUESTION = "How do I run the tests?"


@pytest.fixture(scope="module")
def cached_app(
    new_database: Callable[[], str], embedder: Embedder, local_model: LocalModel
) -> Iterator[tuple[BackgroundServer, Engine]]:
    """An app over a two-page corpus of its own, so the test can ingest into it."""
    pages = [DOCS / "getting-started.md", DOCS / "caps.md"]
    with corpus_app(
        new_database(),
        embedder,
        local_model,
        pages,
        response_cache=True,
        admin_emails="ops@example.com",
    ) as app:
        yield app


def _call(engine: Engine, trace_id: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT status, cost_usd, cache_hit, saved_usd, attempts, reserved_usd, "
                "(SELECT sum(s.reserved_usd) FROM spend_counters s "
                " WHERE s.scope = 'user:' || c.user_id::text) AS user_reserved "
                "FROM llm_calls c WHERE c.trace_id = :t"
            ),
            {"t": trace_id},
        ).one()
    return dict(row._mapping)


def _answer(events: list[tuple[str, dict[str, object]]]) -> str:
    return "".join(str(d["text"]) for n, d in events if n == "token")


def _asked(
    server: BackgroundServer, local_model: LocalModel, email: str, question: str, **body: object
) -> tuple[list[tuple[str, dict[str, object]]], int]:
    """The events of one question and how many requests reached the upstream."""
    with sign_in(server.url, email) as client:
        before = local_model.stats()["requests"]
        events = chat(client, question, **body)
        after = local_model.stats()["requests"]
    assert isinstance(before, int) and isinstance(after, int)
    return events, after - before


def test_a_repeated_question_is_served_from_the_cache_at_no_cost(
    cached_app: tuple[BackgroundServer, Engine], local_model: LocalModel
) -> None:
    server, engine = cached_app
    live, upstream = _asked(server, local_model, "ann@example.com", QUESTION)
    assert upstream == 1 and live[-1][0] == "done"
    live_cost = Decimal(str(live[-1][1]["cost_usd"]))
    assert live_cost > 0
    assert _call(engine, str(live[0][1]["trace_id"]))["cache_hit"] is False
    # Another user, another spelling of the same question.
    hit, upstream = _asked(server, local_model, "bob@example.com", "  how do I run the TESTS ")
    assert upstream == 0  # no request reached the model
    assert hit[-1][0] == "done" and Decimal(str(hit[-1][1]["cost_usd"])) == 0
    assert [n for n, _ in hit].count("token") > 3  # streamed in pieces, like a live answer
    assert _answer(hit) == _answer(live) and hit[1] == live[1]  # same answer, same sources
    call = _call(engine, str(hit[0][1]["trace_id"]))
    assert call["cache_hit"] is True and call["cost_usd"] == 0 and call["attempts"] == 0
    # The early reservation's bound, held for the replay only (app/caps/early.py): freed.
    assert call["reserved_usd"] > 0 and call["user_reserved"] == 0  # type: ignore[operator]
    assert call["saved_usd"] == live_cost and call["status"] == "ok"


def test_a_paraphrase_above_the_similarity_threshold_is_a_hit(
    cached_app: tuple[BackgroundServer, Engine], local_model: LocalModel
) -> None:
    server, engine = cached_app
    _asked(server, local_model, "ann@example.com", QUESTION)  # cached (or already was)
    hit, upstream = _asked(server, local_model, "cy@example.com", "How can I run the tests?")
    assert upstream == 0 and _call(engine, str(hit[0][1]["trace_id"]))["cache_hit"] is True
    # all-MiniLM-L6-v2 puts "How do I run the test suite?" at 0.78: below 0.95, a miss.
    miss, upstream = _asked(server, local_model, "cy@example.com", "How do I run the test suite?")
    assert upstream == 1 and _call(engine, str(miss[0][1]["trace_id"]))["cache_hit"] is False


def test_a_follow_up_is_never_served_from_the_cache(
    cached_app: tuple[BackgroundServer, Engine], local_model: LocalModel
) -> None:
    server, _ = cached_app
    first, _ = _asked(server, local_model, "dee@example.com", "What are the spending caps?")
    conversation = first[0][1]["conversation_id"]
    _, upstream = _asked(server, local_model, "dee@example.com", "What are the spending caps?")
    assert upstream == 0
    with sign_in(server.url, "dee@example.com") as client:
        before = local_model.stats()["requests"]
        chat(client, "What are the spending caps?", conversation_id=conversation)
        assert local_model.stats()["requests"] == before + 1  # its context differs


def test_an_ingest_that_changes_the_corpus_invalidates_the_cache(
    cached_app: tuple[BackgroundServer, Engine],
    local_model: LocalModel,
    embedder: Embedder,
    tmp_path: Path,
) -> None:
    server, engine = cached_app
    _asked(server, local_model, "eve@example.com", QUESTION)
    _, upstream = _asked(server, local_model, "eve@example.com", QUESTION)
    assert upstream == 0  # cached
    page = tmp_path / "testing.md"
    page.write_text("# Testing\n\nThe tests run with pytest against a real database.\n")
    report = ingest_paths(
        [page], engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40
    )
    assert not report.errors
    events, upstream = _asked(server, local_model, "eve@example.com", QUESTION)
    assert upstream == 1  # the corpus changed: answered live again
    assert _call(engine, str(events[0][1]["trace_id"]))["cache_hit"] is False
    _, upstream = _asked(server, local_model, "eve@example.com", QUESTION)
    assert upstream == 0  # and cached again under the new corpus version


def test_questions_are_normalised_for_the_exact_match() -> None:
    assert normalise("  How do I run\tthe TESTS?? ") == normalise("how do i run the tests")


def test_the_dashboard_shows_the_hit_rate_and_the_money_saved(
    cached_app: tuple[BackgroundServer, Engine], local_model: LocalModel
) -> None:
    server, engine = cached_app
    _asked(server, local_model, "fay@example.com", "What happens when a cap is reached?")
    _asked(server, local_model, "fay@example.com", "What happens when a cap is reached?")
    with engine.connect() as conn:
        hits, answered, saved = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE cache_hit), count(*), sum(saved_usd) "
                "FROM llm_calls WHERE feature = 'chat' AND admission = 'allowed'"
            )
        ).one()
    assert hits >= 1 and saved > 0
    with sign_in(server.url, "ops@example.com") as ops:
        levers = ops.get("/api/admin/dashboard/levers?days=1").json()
    assert levers["cache_hits"] == hits and levers["answered"] == answered
    assert levers["cache_hit_rate"] == hits / answered
    assert Decimal(levers["cache_saved_usd"]) == saved


def test_an_answer_cut_by_a_callers_max_tokens_or_holding_personal_data_is_not_cached(
    cached_app: tuple[BackgroundServer, Engine], local_model: LocalModel
) -> None:
    """One caller's tiny `max_tokens` must not become everyone's answer, and an answer to a
    question with an email in it must not be served to someone else."""
    server, _ = cached_app
    question = "Which command runs the whole test suite?"
    cut, upstream = _asked(server, local_model, "cut@example.com", question, max_tokens=2)
    assert upstream == 1 and cut[-1][0] == "done"
    again, upstream = _asked(server, local_model, "next@example.com", question)
    assert upstream == 1, "the truncated answer was served from the cache"
    assert len(_answer(again)) > len(_answer(cut))

    personal = "I am bob@example.org: how do I start ragship locally?"
    first, upstream = _asked(server, local_model, "bob@example.org", personal)
    assert upstream == 1 and first[-1][0] == "done"
    other, upstream = _asked(server, local_model, "eve@example.com", personal)
    assert upstream == 1, "an answer to a question with personal data was shared"


def test_deleting_the_conversation_deletes_its_cached_answer(
    cached_app: tuple[BackgroundServer, Engine], local_model: LocalModel
) -> None:
    server, _ = cached_app
    question = "Where does ragship keep its data in development?"
    first, upstream = _asked(server, local_model, "gil@example.com", question)
    assert upstream == 1 and first[-1][0] == "done"
    _, upstream = _asked(server, local_model, "hal@example.com", question)
    assert upstream == 0  # served from gil's answer
    with sign_in(server.url, "gil@example.com") as gil:
        gone = gil.delete(f"/api/conversations/{first[0][1]['conversation_id']}")
        assert gone.status_code == 204
    _, upstream = _asked(server, local_model, "hal@example.com", question)
    assert upstream == 1, "the deleted conversation's answer was still served"


def test_a_first_turns_lookup_and_search_leave_in_one_round_trip(
    db_url: str, embedder: Embedder, corpus: IngestReport, tmp_path: Path
) -> None:
    """The chat path's first-turn reads (`search_or_cached`, app/prepare.py): the lookup,
    which reads the corpus version with the entry, and the search go out before
    PostgreSQL's first answer, with one Sync, and nothing after it (libpq's trace: F from
    the client, B from the server). Before, the version, the lookup and the search were
    three round trips. A miss yields the key under the current corpus version and the
    search's passages."""
    question = "How do I roll back a release when the migration failed?"
    embedding = embedder.embed_one(question)
    parts = CacheKeyParts("v1", "local", "main")
    trace = tmp_path / "libpq.trace"

    async def work() -> tuple[CacheKey | None, str, CachedAnswer | None, int]:
        engine = make_async_engine(db_url)
        try:
            async with autocommit_scope(async_sessionmaker(engine)) as session:
                raw = (await (await session.connection()).get_raw_connection()).driver_connection
                with trace.open("w") as sink:
                    raw.pgconn.trace(sink.fileno())
                    raw.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
                    try:
                        key, hit, passages = await search_or_cached(
                            session,
                            make_settings(),
                            question=question,
                            embedding=embedding,
                            cache=parts,
                            fit=CorpusFit(),
                        )
                    finally:
                        raw.pgconn.untrace()
                return key, await corpus_version(session), hit, len(passages)
        finally:
            await engine.dispose()

    key, current, hit, passages = asyncio.run(work())
    assert (key, hit) == (parts.with_version(current), None) and passages > 0
    traced = trace.read_text()
    sent, answered = traced.split("\nB\t", 1)
    assert "response_cache" in sent and "ragship_common_lexemes" in sent
    assert sent.count("\tSync") == 1, sent[-200:]
    assert not any(line.startswith("F") for line in answered.splitlines()), "a second round trip"
