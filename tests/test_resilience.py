"""Every way the upstream fails, against the local model's fault injection over real HTTP.

Each test prints the measured time from the fault to the user-visible message; none depends
on it (timings belong in bench/): time limits are set far from what a healthy call needs,
and what the app does later is polled for with a generous deadline.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
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


def arrivals(local_model: LocalModel) -> list[float]:
    """When the upstream received its recent requests (its own monotonic clock)."""
    return list(local_model.stats()["arrivals"])  # type: ignore[call-overload]


def test_429_is_retried_after_retry_after_and_charged_once(
    start_app, local_model: LocalModel, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = start_app()
    # Longer than any backoff the client picks on its own for a first retry (at most 0.5 s).
    local_model.fault("rate_limit", retry_after=1.0)
    before = upstream_calls(local_model)
    events, elapsed = ask(app, "retry429@example.com")
    assert events[-1][0] == "done" and re.search(r"\[\d+\]", text_of(events))
    assert upstream_calls(local_model) - before == 2
    refused_at, retried_at = arrivals(local_model)[-2:]
    assert retried_at - refused_at >= 1.0  # as the upstream saw it: Retry-After was honoured
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
    print(f"connection refused: message after {elapsed:.2f}s")


# A stall far longer than any test: only the first-token timeout can end it.
STALL_S = 600


def test_stall_before_first_token_times_out_and_retries(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    # The retry must start answering within the timeout: make it generous for a busy machine.
    app = start_app(llm_first_token_timeout_s=5)
    local_model.fault("stall", delay_s=STALL_S)
    before = upstream_calls(local_model)
    events, elapsed = ask(app, "stall@example.com")
    assert events[-1][0] == "done" and text_of(events)
    assert upstream_calls(local_model) - before == 2  # the stalled try, then the answer
    print(f"stall then success: answered in {elapsed:.2f}s")


def test_stall_every_time_gives_a_clear_error_within_the_budget(
    start_app, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(llm_first_token_timeout_s=0.5)
    local_model.fault("stall", delay_s=STALL_S, times=3)
    before = upstream_calls(local_model)
    events, elapsed = ask(app, "stalls@example.com")
    assert events[-1][0] == "error" and events[-1][1]["kind"] == "first_token_timeout"
    assert "did not start answering" in events[-1][1]["message"]
    assert upstream_calls(local_model) - before == 3  # the first try and both retries
    print(f"stall x3: message after {elapsed:.2f}s")


def test_total_time_limit_stops_a_slow_answer_and_charges_what_was_used(
    start_app, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    # Half a second a token: the first arrives well inside the limit, the whole answer (tens
    # of tokens) never does.
    app = start_app(llm_total_timeout_s=4.0)
    local_model.fault("slow", delay_s=0.5)
    events, elapsed = ask(app, "slow@example.com")
    error = events[-1][1]
    assert events[-1][0] == "error" and error["kind"] == "total_timeout"
    assert 0 < len(text_of(events)) and Decimal(error["cost_usd"]) > 0
    print(f"slow answer: stopped after {elapsed:.2f}s")


def test_malformed_chunk_keeps_the_partial_answer(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    app = start_app()
    local_model.fault("malformed", after_tokens=3)
    events, _ = ask(app, "malformed@example.com")
    # The three words before the bad chunk arrive (held back by the guardrails, maybe as one).
    assert len(text_of(events).split()) == 3
    assert events[-1][0] == "error" and events[-1][1]["kind"] == "broken_stream"
    assert Decimal(events[-1][1]["cost_usd"]) > 0


def test_breaker_opens_then_fails_fast(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    # A cool-down no test outlasts: the fail-fast request cannot become a trial by accident.
    app = start_app(breaker_failures=3, breaker_cooldown_s=3600, llm_max_retries=0)
    local_model.fault("server_error", times=3)
    for n in range(3):
        events, _ = ask(app, f"breaker{n}@example.com")
        assert events[-1][1]["kind"] == "server_error"
    before = upstream_calls(local_model)
    for n in range(3):
        events, elapsed = ask(app, f"breaker-fast{n}@example.com")
        assert events[-1][1]["kind"] == "breaker_open" and "degraded" in events[-1][1]["message"]
    assert upstream_calls(local_model) == before  # failed fast: no upstream call
    print(f"breaker open: message after {elapsed * 1000:.0f} ms")


def test_breaker_recovers_by_itself_and_stays_closed(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    app = start_app(
        breaker_failures=3, breaker_cooldown_s=0.5, llm_max_retries=0, rate_limit_requests=1000
    )
    local_model.fault("server_error", times=3)
    for n in range(3):
        events, _ = ask(app, f"recover{n}@example.com")
        assert events[-1][1]["kind"] == "server_error"

    def recovered() -> bool:
        events, _ = ask(app, "recover-later@example.com")
        return events[-1][0] == "done"

    eventually(recovered, what="the breaker to let a trial request through")
    # Recovered for good: no request needs to be a trial any more, so requests in a row (and
    # at once) are all answered.
    for _ in range(3):
        events, _ = ask(app, "recover-later@example.com")
        assert events[-1][0] == "done"
    assert all(events[-1][0] == "done" for events in _ask_at_once(app, "recover-burst", 4))


def _ask_at_once(app: BackgroundServer, prefix: str, n: int) -> list[list[Any]]:
    with ThreadPoolExecutor(n) as pool:
        return [
            events
            for events, _ in pool.map(lambda i: ask(app, f"{prefix}{i}@example.com"), range(n))
        ]


def test_an_abandoned_trial_does_not_wedge_the_breaker(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: the trial request's user closes the tab after the first token."""
    app = start_app(
        breaker_failures=1, breaker_cooldown_s=1, llm_max_retries=0, rate_limit_requests=1000
    )
    local_model.fault("server_error")
    # The trial's answer: a token a second, so its client has left long before the end.
    local_model.fault("slow", delay_s=1.0)
    events, _ = ask(app, "trial-opens@example.com")
    assert events[-1][1]["kind"] == "server_error"
    before = local_model.stats()

    def trial_abandoned() -> bool:
        """Ask until a request is let through as the trial; leave at its first token."""
        with sign_in(app.url, "trial-leaves@example.com") as client:
            with client.stream("POST", "/api/chat", json={"message": QUESTION}) as response:
                for line in response.iter_lines():
                    if line == "event: token":
                        return True  # leaving the block drops the connection mid-answer
                    if line == "event: error":
                        return False  # still open: fail fast, ask again
        raise AssertionError("the stream ended without a token or an error")

    eventually(trial_abandoned, what="the cool-down to let a trial request through")
    eventually(
        lambda: local_model.stats()["disconnects"] > before["disconnects"],  # type: ignore[operator]
        what="the upstream to see the trial's stream closed",
    )
    assert local_model.stats()["completed_streams"] == before["completed_streams"]

    def answered() -> bool:
        events, _ = ask(app, "after-trial@example.com")
        return events[-1][0] == "done"

    eventually(answered, what="a request after the abandoned trial to be answered")
    events, _ = ask(app, "after-trial@example.com")
    assert events[-1][0] == "done"


def test_llm_health_is_real_cached_and_recorded(
    start_app, local_model: LocalModel, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(llm_health_cache_s=3600)  # the second check falls inside it on any machine
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
