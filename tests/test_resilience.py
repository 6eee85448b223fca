"""Every way the upstream fails, against the local model's fault injection over real HTTP.

Each test prints the measured time from the fault to the user-visible message.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Engine

from app.localmodel.runner import BackgroundServer
from tests.conftest import LocalModel, eventually, scalar, sign_in
from tests.sse import read_events

QUESTION = "How do I ingest PDF files?"


def ask(
    app: BackgroundServer, email: str, **body: Any
) -> tuple[list[tuple[str, dict[str, Any]]], float]:
    with sign_in(app.url, email) as client:
        started = time.perf_counter()
        with client.stream("POST", "/api/chat", json={"message": QUESTION, **body}) as response:
            assert response.status_code == 200, response.read()
            events = read_events(response)
        return events, time.perf_counter() - started


def text_of(events: list[tuple[str, dict[str, Any]]]) -> str:
    return "".join(d["text"] for n, d in events if n == "token")


def upstream_calls(local_model: LocalModel) -> int:
    return int(local_model.stats()["requests"])  # type: ignore[call-overload]


def test_429_is_retried_after_retry_after_and_charged_once(
    start_app, local_model: LocalModel, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = start_app()
    local_model.fault("rate_limit", retry_after=0.3)
    before = upstream_calls(local_model)
    events, elapsed = ask(app, "retry429@example.com")
    assert events[-1][0] == "done" and "[1]" in text_of(events)
    assert upstream_calls(local_model) - before == 2
    assert elapsed >= 0.3
    rows = scalar(
        db_engine,
        "SELECT count(*) FROM llm_calls c JOIN users u ON u.id = c.user_id WHERE u.email = 'retry429@example.com' AND c.cost_usd > 0",
    )
    assert rows == 1
    print(f"429 then success: answered in {elapsed:.2f}s")


def test_insufficient_quota_is_not_retried_and_pauses_the_feature(
    start_app, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    app = start_app()
    local_model.fault("insufficient_quota")
    before = upstream_calls(local_model)
    events, elapsed = ask(app, "quota@example.com")
    assert events[-1][0] == "error" and events[-1][1]["kind"] == "insufficient_quota"
    assert "paused" in events[-1][1]["message"]
    assert upstream_calls(local_model) - before == 1  # no retries
    again, _ = ask(app, "quota2@example.com")
    assert again[-1][1]["kind"] == "insufficient_quota"
    assert upstream_calls(local_model) - before == 1  # the breaker holds everyone back
    print(f"insufficient_quota: message after {elapsed:.2f}s")


def test_5xx_is_retried_then_the_fallback_model_answers(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    app = start_app(llm_fallback_model="ragship-local-1-mini")
    local_model.fault("server_error", times=100, model="ragship-local-1")
    before = upstream_calls(local_model)
    events, elapsed = ask(app, "fallback@example.com")
    assert events[-1][0] == "done" and events[-1][1]["model"] == "ragship-local-1-mini"
    assert upstream_calls(local_model) - before == 4  # 1 + 2 retries on the main model, then 1
    print(f"5xx x3 then fallback: answered in {elapsed:.2f}s")


def test_connection_errors_end_in_a_friendly_message(start_app) -> None:  # type: ignore[no-untyped-def]
    app = start_app(llm_base_url="http://127.0.0.1:1/v1", llm_max_retries=1)
    events, elapsed = ask(app, "noupstream@example.com")
    assert events[-1][0] == "error" and events[-1][1]["kind"] == "connection"
    assert "could not be reached" in events[-1][1]["message"]
    assert elapsed < 5
    print(f"connection refused: message after {elapsed:.2f}s")


def test_stall_before_first_token_times_out_and_retries(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    app = start_app(llm_first_token_timeout_s=0.5)
    local_model.fault("stall", delay_s=30)
    events, elapsed = ask(app, "stall@example.com")
    assert events[-1][0] == "done" and text_of(events)
    assert elapsed < 3
    print(f"stall then success: answered in {elapsed:.2f}s")


def test_stall_every_time_gives_a_clear_error_within_the_budget(
    start_app, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(llm_first_token_timeout_s=0.5)
    local_model.fault("stall", delay_s=30, times=3)
    events, elapsed = ask(app, "stalls@example.com")
    assert events[-1][0] == "error" and events[-1][1]["kind"] == "first_token_timeout"
    assert "did not start answering" in events[-1][1]["message"]
    assert elapsed < 0.5 * 3 + 2.0  # three timed-out tries plus bounded backoff
    print(f"stall x3: message after {elapsed:.2f}s")


def test_total_time_limit_stops_a_slow_answer_and_charges_what_was_used(
    start_app, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(llm_total_timeout_s=1.0)
    local_model.fault("slow", delay_s=0.2)
    events, elapsed = ask(app, "slow@example.com")
    error = events[-1][1]
    assert events[-1][0] == "error" and error["kind"] == "total_timeout"
    assert 0 < len(text_of(events)) and Decimal(error["cost_usd"]) > 0
    assert elapsed < 2.0
    print(f"slow answer: stopped after {elapsed:.2f}s")


def test_malformed_chunk_keeps_the_partial_answer(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    app = start_app()
    local_model.fault("malformed", after_tokens=3)
    events, _ = ask(app, "malformed@example.com")
    assert [n for n, _ in events].count("token") == 3
    assert events[-1][0] == "error" and events[-1][1]["kind"] == "broken_stream"
    assert Decimal(events[-1][1]["cost_usd"]) > 0


def test_breaker_opens_fails_fast_then_recovers_by_itself(
    start_app, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(breaker_failures=3, breaker_cooldown_s=0.5, llm_max_retries=0)
    local_model.fault("server_error", times=3)
    for n in range(3):
        events, _ = ask(app, f"breaker{n}@example.com")
        assert events[-1][1]["kind"] == "server_error"
    before = upstream_calls(local_model)
    events, elapsed = ask(app, "breaker-fast@example.com")
    assert events[-1][1]["kind"] == "breaker_open" and "degraded" in events[-1][1]["message"]
    assert upstream_calls(local_model) == before  # failed fast: no upstream call
    print(f"breaker open: message after {elapsed * 1000:.0f} ms")

    def recovered() -> bool:
        events, _ = ask(app, "breaker-later@example.com")
        return events[-1][0] == "done"

    eventually(recovered, timeout_s=10, what="the breaker to let a trial request through")


def test_llm_health_is_real_cached_and_recorded(
    start_app, local_model: LocalModel, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(llm_health_cache_s=60)
    before = upstream_calls(local_model)
    first = httpx.get(f"{app.url}/health/llm")
    second = httpx.get(f"{app.url}/health/llm")
    assert first.status_code == 200 and first.json()["cached"] is False
    assert (
        second.json()["cached"] is True
        and second.json()["checked_at"] == first.json()["checked_at"]
    )
    assert upstream_calls(local_model) - before == 1
    assert (
        scalar(
            db_engine, "SELECT count(*) FROM llm_calls WHERE feature = 'health' AND status = 'ok'"
        )
        >= 1
    )  # type: ignore[operator]


def test_llm_health_reports_down_with_the_reason_while_healthz_stays_up(start_app) -> None:  # type: ignore[no-untyped-def]
    app = start_app(llm_base_url="http://127.0.0.1:1/v1")
    response = httpx.get(f"{app.url}/health/llm")
    assert response.status_code == 503 and "connection" in response.json()["detail"]
    assert httpx.get(f"{app.url}/healthz").status_code == 200
    assert httpx.get(f"{app.url}/readyz").status_code == 200
