"""The client's retry loop, through the real client against the local model: what is
retried, how often, after how long (as the upstream saw it), and when the fallback model
answers. No database: these are the fast checks `make mutation` runs on the loop."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from app.llm.client import MAX_RETRY_AFTER_S, Finished, LLMClient, TextDelta, backoff_s
from app.llm.errors import UpstreamError
from tests.conftest import LocalModel, make_settings

PROMPT = [
    {
        "role": "user",
        "content": "Sources:\n[1] Guide › Install\nRun make dev to start the server on port "
        "8000. The server listens on all interfaces. Stop it with Ctrl-C.\n\n"
        "Question: How do I start the server on port 8000?",
    }
]
MAIN, FALLBACK = "ragship-local-1", "ragship-local-1-mini"
Events = list[TextDelta | Finished]


def _ask(
    local_model: LocalModel, max_tokens: int = 200, temperature: float = 0, **settings: object
) -> tuple[Events | UpstreamError, int]:
    """One streamed answer: its events (or the error it ended with) and the upstream calls."""
    values: dict[str, object] = {"llm_base_url": local_model.base_url, "llm_model": MAIN}
    client = LLMClient(
        base_url=local_model.base_url,
        api_key="local",
        settings=make_settings(**{**values, **settings}),
    )

    async def go() -> Events:
        try:
            stream = client.stream_chat(PROMPT, max_tokens=max_tokens, temperature=temperature)
            return [e async for e in stream]
        finally:
            await client.close()

    before = int(local_model.stats()["requests"])  # type: ignore[call-overload]
    try:
        result: Events | UpstreamError = asyncio.run(go())
    except UpstreamError as err:
        result = err
    return result, int(local_model.stats()["requests"]) - before  # type: ignore[call-overload]


def _finished(result: Events | UpstreamError) -> Finished:
    assert isinstance(result, list), result
    assert isinstance(result[-1], Finished), result
    return result[-1]


def _failed(result: Events | UpstreamError) -> str:
    assert isinstance(result, UpstreamError), result
    return result.kind


def test_backoff_is_the_retry_after_the_provider_sent_capped_at_30_s() -> None:
    assert backoff_s(0, retry_after_s=2.5) == 2.5
    assert backoff_s(4, retry_after_s=0.0) == 0.0
    assert backoff_s(1, retry_after_s=120.0) == MAX_RETRY_AFTER_S == 30.0


@pytest.mark.parametrize(
    ("attempt", "base_s", "cap_s"),
    [(0, 0.5, 0.5), (1, 0.5, 1.0), (2, 0.5, 2.0), (3, 0.5, 4.0), (4, 0.5, 8.0), (6, 0.5, 8.0)]
    + [(2, 0.1, 0.4)],
)
def test_backoff_without_retry_after_is_full_jitter_doubling_up_to_8_s(
    attempt: int, base_s: float, cap_s: float
) -> None:
    """Uniform over [0, min(8, base * 2**attempt)]: 2,000 draws reach both ends of it."""
    random.seed(attempt)
    draws = [backoff_s(attempt, retry_after_s=None, base_s=base_s) for _ in range(2000)]
    assert all(0 <= d <= cap_s for d in draws)
    assert min(draws) < 0.01 * cap_s and max(draws) > 0.99 * cap_s
    if base_s == 0.5:  # the default base
        default = [backoff_s(attempt, retry_after_s=None) for _ in range(2000)]
        assert all(d <= cap_s for d in default) and max(default) > 0.99 * cap_s


def test_a_429_is_retried_after_its_retry_after_as_the_upstream_saw_it(
    local_model: LocalModel,
) -> None:
    clean = _finished(_ask(local_model)[0])
    local_model.fault("rate_limit", retry_after=0.4)
    result, calls = _ask(local_model, llm_max_retries=1)
    finished = _finished(result)
    refused_at, retried_at = list(local_model.stats()["arrivals"])[-2:]  # type: ignore[call-overload]
    assert calls == 2 and retried_at - refused_at >= 0.4
    # The answer is the retry's, counted whole, with the number of attempts it took.
    assert (finished.attempts, clean.attempts) == (2, 1)
    assert finished == Finished(
        clean.model,
        clean.reason,
        clean.input_tokens,
        clean.output_tokens,
        clean.cached_input_tokens,
        attempts=2,
    )
    assert clean.model == MAIN and clean.reason == "stop"
    assert clean.input_tokens and clean.output_tokens and clean.cached_input_tokens == 0


@pytest.mark.parametrize(("retries", "failures"), [(0, 1), (1, 2), (2, 3)])
def test_server_errors_are_retried_exactly_max_retries_times(
    local_model: LocalModel, retries: int, failures: int
) -> None:
    local_model.fault("server_error", times=failures)
    result, calls = _ask(local_model, llm_max_retries=retries, breaker_failures=10)
    assert (_failed(result), calls) == ("server_error", retries + 1)


def test_the_last_retry_can_succeed(local_model: LocalModel) -> None:
    local_model.fault("unavailable", times=2)
    result, calls = _ask(local_model, llm_max_retries=2, breaker_failures=10)
    assert (_finished(result).attempts, calls) == (3, 3)


def test_a_spent_quota_is_never_retried_nor_sent_to_the_fallback(local_model: LocalModel) -> None:
    local_model.fault("insufficient_quota")
    result, calls = _ask(local_model, llm_max_retries=3, llm_fallback_model=FALLBACK)
    assert (_failed(result), calls) == ("insufficient_quota", 1)


def test_no_retry_once_tokens_have_streamed(local_model: LocalModel) -> None:
    """A retry would show the user a second answer after the first one's start."""
    local_model.fault("cut", after_tokens=2)
    events: Events = []

    async def go() -> None:
        client = LLMClient(
            base_url=local_model.base_url,
            api_key="local",
            settings=make_settings(llm_base_url=local_model.base_url, llm_max_retries=3),
        )
        try:
            async for event in client.stream_chat(PROMPT, max_tokens=200, temperature=0):
                events.append(event)
        finally:
            await client.close()

    before = int(local_model.stats()["requests"])  # type: ignore[call-overload]
    with pytest.raises(UpstreamError) as cut:
        asyncio.run(go())
    assert cut.value.kind == "broken_stream" and cut.value.started
    assert int(local_model.stats()["requests"]) - before == 1  # type: ignore[call-overload]
    assert events and all(isinstance(e, TextDelta) for e in events)


def test_a_retry_that_would_overrun_the_retry_budget_is_not_made(local_model: LocalModel) -> None:
    local_model.fault("rate_limit", retry_after=30)
    result, calls = _ask(local_model, llm_max_retries=3, llm_retry_budget_s=1.0)
    assert (_failed(result), calls) == ("rate_limit", 1)


def test_when_the_main_model_keeps_failing_the_fallback_answers(local_model: LocalModel) -> None:
    local_model.fault("server_error", times=2, model=MAIN)
    result, calls = _ask(
        local_model, llm_max_retries=1, llm_fallback_model=FALLBACK, breaker_failures=10
    )
    finished = _finished(result)
    assert (finished.model, finished.attempts, calls) == (FALLBACK, 3, 3)
    assert {e.model for e in result if isinstance(e, TextDelta)} == {FALLBACK}  # type: ignore[union-attr]


def test_an_open_breaker_sends_the_request_to_the_fallback(local_model: LocalModel) -> None:
    """The main model's breaker is open: its attempts are skipped, not waited out."""
    local_model.fault("server_error", times=1, model=MAIN)
    values: dict[str, object] = {
        "llm_base_url": local_model.base_url,
        "llm_model": MAIN,
        "llm_fallback_model": FALLBACK,
        "llm_max_retries": 2,
        "breaker_failures": 1,
        "breaker_cooldown_s": 3600,
    }
    client = LLMClient(
        base_url=local_model.base_url, api_key="local", settings=make_settings(**values)
    )

    async def go() -> Events:
        try:
            return [e async for e in client.stream_chat(PROMPT, max_tokens=200, temperature=0)]
        finally:
            await client.close()

    before = int(local_model.stats()["requests"])  # type: ignore[call-overload]
    finished = _finished(asyncio.run(go()))
    assert int(local_model.stats()["requests"]) - before == 2  # type: ignore[call-overload]
    assert (finished.model, finished.attempts) == (FALLBACK, 2)
    assert client.breakers[MAIN].state == "open"


def test_every_model_failing_raises_the_last_error(local_model: LocalModel) -> None:
    local_model.fault("server_error", times=1, model=MAIN)
    local_model.fault("rate_limit", times=1, model=FALLBACK, retry_after=0)
    result, calls = _ask(
        local_model, llm_max_retries=0, llm_fallback_model=FALLBACK, breaker_failures=10
    )
    assert (_failed(result), calls) == ("rate_limit", 2)


def test_each_retry_is_logged_with_its_cause_and_delay(
    local_model: LocalModel, caplog: pytest.LogCaptureFixture
) -> None:
    local_model.fault("rate_limit", retry_after=0.25)
    with caplog.at_level(logging.WARNING, logger="ragship.llm"):
        _finished(_ask(local_model, llm_max_retries=1)[0])
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"upstream rate_limit on {MAIN}; retry 1 in 0.25s")
    ]


def test_a_spent_quota_alerts_and_keeps_the_model_paused_without_the_fallback(
    local_model: LocalModel, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator is told once; later requests get the quota message at no upstream call,
    and are not sent to the fallback (the same account pays for it)."""
    local_model.fault("insufficient_quota", model=MAIN)
    values: dict[str, object] = {
        "llm_base_url": local_model.base_url,
        "llm_model": MAIN,
        "llm_fallback_model": FALLBACK,
    }
    client = LLMClient(
        base_url=local_model.base_url, api_key="local", settings=make_settings(**values)
    )

    async def go() -> list[str]:
        kinds = []
        try:
            for _ in range(2):
                try:
                    [e async for e in client.stream_chat(PROMPT, max_tokens=200, temperature=0)]
                except UpstreamError as err:
                    kinds.append(err.kind)
            return kinds
        finally:
            await client.close()

    before = int(local_model.stats()["requests"])  # type: ignore[call-overload]
    with caplog.at_level(logging.WARNING, logger="ragship.llm"):
        kinds = asyncio.run(go())
    assert kinds == ["insufficient_quota", "insufficient_quota"]
    assert int(local_model.stats()["requests"]) - before == 1  # type: ignore[call-overload]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", f"upstream insufficient_quota on {MAIN}: no watcher to alert the operator")
    ]


def test_the_callers_max_tokens_and_temperature_reach_the_upstream(local_model: LocalModel) -> None:
    finished = _finished(_ask(local_model, max_tokens=3, temperature=0.7)[0])
    assert (finished.reason, finished.output_tokens) == ("length", 3)
    sampling = local_model.stats()["last_sampling"]
    assert isinstance(sampling, dict) and sampling["temperature"] == 0.7
    assert 3 in (sampling["max_tokens"], sampling["max_completion_tokens"])
