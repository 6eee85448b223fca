"""Quality watched in production (docs/evals.md): sampled live answers are scored by the
judge in the background, the judge call priced, reserved and recorded as feature `judge`;
a stalled judge never holds up an answer; an injected drop raises `quality_drop` at a real
webhook; two replicas never score the same answer twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.db import make_sync_engine
from app.localmodel.runner import BackgroundServer
from app.rag.prompt import PROMPT_VERSION
from tests.app_process import app_processes
from tests.conftest import LocalModel, eventually, scalar, sign_in
from tests.sse import chat

JUDGE = "ragship-local-1-mini"  # the answers use ragship-local-1: faults can pick either
QUESTIONS = [
    "How do I run the tests?",
    "What does CONTENT_LOGGING do?",
    "How does the response cache get invalidated?",
    "What is the kill switch?",
    "How do I ingest PDF files?",
    "What does RETENTION_DAYS control?",
]
ON = {
    "quality_sample_rate": 1.0,
    "quality_judge_model": JUDGE,
    "admin_emails": "ops@example.com",
    "rate_limit_requests": 1000,
}


@pytest.fixture(scope="module")
def corpus_db(docs_database: Callable[[], str]) -> Iterator[tuple[str, Engine]]:
    """A database of this module's own with the docs ingested."""
    url = docs_database()
    engine = make_sync_engine(url)
    yield url, engine
    engine.dispose()


@pytest.fixture
def fresh(corpus_db: tuple[str, Engine]) -> tuple[str, Engine]:
    """The module's database with no answers, scores or alerts yet: the watch samples every
    answer in it, so each test starts from none."""
    url, engine = corpus_db
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE llm_calls, quality_scores, alerts"))
    return url, engine


def ask_all(
    app: BackgroundServer | _Url, questions: list[str], email: str = "asker@example.com"
) -> None:
    with sign_in(app.url, email) as client:
        for question in questions:
            events = chat(client, question)
            assert events[-1][0] == "done", events[-1]


def rows(engine: Engine, sql: str, **params: object) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params))


def test_sampled_answers_are_scored_by_a_priced_recorded_judge_call(start_app, fresh) -> None:  # type: ignore[no-untyped-def]
    url, engine = fresh
    app = start_app(database_url=url, quality_interval_s=3600, **ON)  # scored on demand
    ask_all(app, QUESTIONS[:3])
    with sign_in(app.url, "ops@example.com") as ops:
        assert ops.post("/api/admin/dashboard/quality/score").json() == {"scored": 3}
        assert ops.post("/api/admin/dashboard/quality/score").json() == {}  # each once
        trend = ops.get("/api/admin/dashboard/quality", params={"bucket": "hour"}).json()
    scores = rows(
        engine,
        "SELECT q.*, c.trace_id FROM quality_scores q JOIN llm_calls c ON c.id = q.call_id",
    )
    assert len(scores) == 3
    for s in scores:
        assert (s.status, s.model, s.prompt_version) == (
            "scored",
            "ragship-local-1",
            PROMPT_VERSION,
        )
        assert (s.judge_model, s.judge_prompt_version) == (JUDGE, "judge-v1")
        # The built-in model quotes its sources and cites them: fully grounded, valid citations.
        assert s.groundedness == 1 and s.citation_validity == 1 and s.dont_know is False
        assert 0 < s.relevance <= 1 and s.judge_cost_usd > 0
    judged = rows(engine, "SELECT * FROM llm_calls WHERE feature = 'judge' ORDER BY id")
    assert [(j.model, j.status, j.prompt_version) for j in judged] == [
        (JUDGE, "ok", "judge-v1")
    ] * 3
    assert {j.trace_id for j in judged} == {s.trace_id for s in scores}
    assert all(0 < j.cost_usd <= j.reserved_usd and j.user_id is None for j in judged)
    assert sum(j.cost_usd for j in judged) == sum(s.judge_cost_usd for s in scores)
    open_reservations = scalar(engine, "SELECT count(*) FROM reservations WHERE settled_at IS NULL")
    assert open_reservations == 0
    assert trend["judge_model"] == JUDGE and trend["sample_rate"] == 1.0
    [row] = trend["trend"]
    assert (row["model"], row["prompt_version"], row["scored"]) == (
        "ragship-local-1",
        PROMPT_VERSION,
        3,
    )
    assert row["groundedness"] == 1.0 and row["dont_know_rate"] == 0.0

    # Under CONTENT_LOGGING=none the call log holds no text: nothing can be scored.
    private = start_app(database_url=url, quality_interval_s=3600, content_logging="none", **ON)
    ask_all(private, QUESTIONS[3:4])
    with sign_in(private.url, "ops@example.com") as ops:
        assert ops.post("/api/admin/dashboard/quality/score").json() == {}
    assert scalar(engine, "SELECT count(*) FROM quality_scores") == 3


def test_a_stalled_judge_never_holds_up_an_answer(  # type: ignore[no-untyped-def]
    start_app, fresh, local_model: LocalModel
) -> None:
    url, engine = fresh
    # The background loop every 50 ms; a judge call may wait as long as the stall, and no
    # heartbeat keeps an answer's stream alive: an answer that waited on the judge would
    # send nothing for 30 s and fail the client's read timeout.
    app = start_app(
        database_url=url,
        quality_interval_s=0.05,
        quality_judge_timeout_s=600,
        stream_heartbeat_s=3600,
        **ON,
    )
    # Every judge call's first byte never comes (while the test runs).
    local_model.fault("stall", model=JUDGE, delay_s=600, times=3)
    ask_all(app, QUESTIONS[:1])

    def judge_stalled() -> bool:
        claimed = scalar(engine, "SELECT count(*) FROM quality_scores WHERE status = 'claimed'")
        last = local_model.stats()["last_messages"]
        return claimed == 1 and str(last[0]["content"]).startswith("You grade")  # type: ignore[index]

    eventually(judge_stalled, what="the judge call to be in flight")
    ask_all(app, QUESTIONS[1:3])  # answered in full while the judge is stalled
    stuck = rows(engine, "SELECT status, scored_at FROM quality_scores ORDER BY call_id")
    assert stuck[0] == ("claimed", None)  # the first answer's score still waits on the judge
    answers = scalar(
        engine, "SELECT count(*) FROM llm_calls WHERE feature = 'chat' AND status = 'ok'"
    )
    assert answers == 3


def test_an_injected_drop_raises_quality_drop(  # type: ignore[no-untyped-def]
    start_app, fresh, local_model: LocalModel, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, engine = fresh
    hook, received = webhook
    # Some of the questions may be answered "I don't know", which is not judged: the
    # baseline needs only three scores, whichever those are.
    app = start_app(
        database_url=url,
        quality_interval_s=3600,
        alert_webhook_url=hook,
        alert_quality_min_scores=3,
        **ON,
    )
    ask_all(app, QUESTIONS)
    with sign_in(app.url, "ops@example.com") as ops:
        assert ops.post("/api/admin/dashboard/quality/score").json() == {"scored": 6}
        # Those answers become the trailing baseline: as if asked two hours ago.
        with engine.begin() as conn:
            conn.execute(text("UPDATE quality_scores SET call_at = call_at - interval '2 hours'"))
        fired = ops.post("/api/admin/dashboard/alerts/evaluate").json()
        assert "quality_drop" not in [a["rule"] for a in fired]
        # Now the model makes things up, citing a source that says no such thing.
        made_up = "The moon is made of green cheese, as every astronaut agrees [1]."
        local_model.fault("scripted", model="ragship-local-1", text=made_up, times=6)
        ask_all(app, QUESTIONS)
        assert ops.post("/api/admin/dashboard/quality/score").json() == {"scored": 6}
        fired = ops.post("/api/admin/dashboard/alerts/evaluate").json()
        assert [a["rule"] for a in fired] == ["quality_drop"]
        again = ops.post("/api/admin/dashboard/alerts/evaluate").json()  # within the cooldown
        assert again == []
    [body] = received
    message = body["text"]
    # Groundedness fell from 1 to 0 (the answers that said "I don't know" are not judged).
    grounded = f"groundedness of ragship-local-1 / {PROMPT_VERSION}: 0.00 over the last 1 h"
    assert f"{grounded} (6 scores) vs 1.00 before" in message
    assert "citation validity" not in message  # [1] was a source it was given


def test_two_replicas_never_score_the_same_answer_twice(  # type: ignore[no-untyped-def]
    fresh, local_model: LocalModel, tmp_path, onnx_env: dict[str, str]
) -> None:
    url, engine = fresh
    env = {
        **onnx_env,
        "DATABASE_URL": url,
        "LLM_BASE_URL": local_model.base_url,
        "STATUS_PROBE_ON_START": "false",
        "STATUS_PROBE_INTERVAL_S": "3600",
        "ALERT_INTERVAL_S": "3600",
        "RATE_LIMIT_REQUESTS": "1000",
        "RESPONSE_CACHE": "false",  # cache hits are not sampled: every answer here is live
        "LOCAL_MODEL_TOKEN_DELAY_S": "0",
        "QUALITY_SAMPLE_RATE": "1",
        "QUALITY_JUDGE_MODEL": JUDGE,
        "QUALITY_INTERVAL_S": "0.05",
        "QUALITY_BATCH": "2",  # many small rounds: the replicas meet over the same calls
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "warning",
    }
    log = tmp_path / "replica.log"
    with app_processes([env, env], log=log, timeout_s=180) as replicas:
        urls = [replica.url for replica in replicas]
        # The first judge call stalls a while: its replica is busy, the other one takes over.
        local_model.fault("stall", model=JUDGE, delay_s=5)
        with ThreadPoolExecutor(4) as pool:  # answers arrive at both replicas at once
            list(
                pool.map(
                    lambda n: ask_all(_Url(urls[n]), QUESTIONS, f"asker{n}@example.com"), range(2)
                )
            )
        assert scalar(engine, "SELECT count(*) FROM llm_calls WHERE feature = 'chat'") == 12
        try:
            eventually(
                lambda: (
                    scalar(engine, "SELECT count(*) FROM quality_scores WHERE status = 'scored'")
                    == 12
                ),
                timeout_s=120,
                what="every answer to be scored",
            )
        except AssertionError:  # say why: the claims, and the replicas' logs
            claims = "SELECT call_id, status, attempts, claimed_by, detail FROM quality_scores"
            print(rows(engine, claims))
            for replica in replicas:
                print(replica.logged()[-3000:])
            raise
    # One judge call per answer that did not say "I don't know" (those are not judged).
    to_judge = scalar(engine, "SELECT count(*) FROM quality_scores WHERE NOT dont_know")
    judged = rows(engine, "SELECT trace_id FROM llm_calls WHERE feature = 'judge'")
    assert len(judged) == to_judge == len({j.trace_id for j in judged}) >= 8
    assert scalar(engine, "SELECT max(attempts) FROM quality_scores") == 1
    assert scalar(engine, "SELECT count(DISTINCT claimed_by) FROM quality_scores") == 2


@dataclass
class _Url:
    """What `ask_all` needs of a server: its URL (here a replica in another process)."""

    url: str
