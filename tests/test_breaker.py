"""The circuit breaker's states, on a controlled clock; and every way a trial request can
end, through the real client against the local model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from app.llm.breaker import CircuitBreaker
from app.llm.client import QUOTA_COOLDOWN_S, Finished, LLMClient, TextDelta
from app.llm.errors import UpstreamError
from tests.conftest import LocalModel, make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_new_breaker_is_closed_with_no_reason_and_no_wait() -> None:
    breaker = CircuitBreaker(failures=3, cooldown_s=10, clock=Clock())
    assert (breaker.state, breaker.reason, breaker.retry_in_s()) == ("closed", "", 0.0)
    assert breaker.admit() == "pass"


def test_opens_after_threshold_then_half_opens_for_one_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure("server_error")
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure("server_error")
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 10.5
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # exactly one trial
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_a_failed_trial_reopens_for_another_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=5, clock=clock)
    breaker.record_failure("connection")
    clock.now = 6
    assert breaker.allow()
    breaker.record_failure("connection")
    assert breaker.state == "open" and breaker.retry_in_s() == 5


def test_a_cancelled_trial_does_not_wedge_the_breaker() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=5, clock=clock)
    breaker.record_failure("server_error")
    clock.now = 6
    assert breaker.allow()  # the trial request starts ...
    breaker.release_trial()  # ... and its client leaves before any verdict
    assert breaker.allow()


def test_a_recovered_breaker_forgets_the_outage_and_can_trip_and_recover_again() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=5, clock=clock)
    breaker.trip(300, "insufficient_quota")
    clock.now = 301
    assert breaker.admit() == "trial"
    breaker.record_success()
    assert (breaker.state, breaker.reason, breaker.retry_in_s()) == ("closed", "", 0.0)
    breaker.record_failure("server_error")  # a second outage, later on
    assert (breaker.state, breaker.reason) == ("open", "server_error")
    clock.now = 307
    assert breaker.admit() == "trial" and breaker.admit() is None


def test_exactly_one_trial_permit_and_every_verdict_ends_it() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, cooldown_s=5, clock=clock)
    assert breaker.admit() == "pass"
    breaker.record_failure("server_error")
    assert breaker.admit() is None
    clock.now = 6
    assert breaker.admit() == "trial" and breaker.admit() is None
    breaker.trip(300, "insufficient_quota")  # a quota verdict ends the trial too
    assert breaker.state == "open" and breaker.reason == "insufficient_quota"
    clock.now = 400
    assert breaker.admit() == "trial"
    breaker.record_success()
    assert breaker.state == "closed" and breaker.admit() == "pass"


# --- every way a trial request can end, through the real client and the local model --------

PROMPT = [
    {
        "role": "user",
        "content": "Sources:\n[1] Guide › Install\nRun make dev to start the server on port "
        "8000. The server listens on all interfaces. Stop it with Ctrl-C.\n\n"
        "Question: How do I start the server on port 8000?",
    }
]


def _client(local_model: LocalModel, clock: Clock) -> LLMClient:
    settings = make_settings(
        llm_base_url=local_model.base_url,
        breaker_failures=1,
        breaker_cooldown_s=30,
        llm_max_retries=0,
    )
    return LLMClient(
        base_url=local_model.base_url, api_key="local", settings=settings, breaker_clock=clock
    )


async def _drain(client: LLMClient) -> list[TextDelta | Finished]:
    return [e async for e in client.stream_chat(PROMPT, max_tokens=200, temperature=0)]


async def _half_open(client: LLMClient, local_model: LocalModel, clock: Clock) -> CircuitBreaker:
    """One upstream 500 opens the breaker; the cool-down then passes on the test's clock."""
    local_model.fault("server_error")
    with pytest.raises(UpstreamError) as failed:
        await _drain(client)
    assert failed.value.kind == "server_error"
    breaker = client.breakers[client.model]
    assert breaker.state == "open"
    with pytest.raises(UpstreamError) as fast:  # open: no upstream call at all
        await _drain(client)
    assert fast.value.kind == "breaker_open"
    assert fast.value.retry_after_s == 30  # the cool-down left, on the test's clock
    clock.now += 31
    assert breaker.state == "half_open"
    return breaker


async def _first_token(events: AsyncIterator[TextDelta | Finished]) -> None:
    async for event in events:
        if isinstance(event, TextDelta):
            return
    raise AssertionError("no token")


def _trial(local_model: LocalModel, ending: Callable[..., Awaitable[None]]) -> CircuitBreaker:
    """Open the breaker, let the cool-down pass, end the trial request with ``ending``."""

    async def go() -> CircuitBreaker:
        clock = Clock()
        client = _client(local_model, clock)
        try:
            breaker = await _half_open(client, local_model, clock)
            await ending(client)
            return breaker
        finally:
            await client.close()

    return asyncio.run(go())


def test_a_successful_trial_closes_the_breaker_for_good(local_model: LocalModel) -> None:
    async def succeed(client: LLMClient) -> None:
        events = await _drain(client)
        assert isinstance(events[-1], Finished)
        for _ in range(3):  # recovered: later requests pass too, no trial needed
            assert isinstance((await _drain(client))[-1], Finished)

    breaker = _trial(local_model, succeed)
    assert breaker.state == "closed" and breaker.admit() == "pass"


def test_a_failed_trial_reopens_the_breaker(local_model: LocalModel) -> None:
    async def fail(client: LLMClient) -> None:
        local_model.fault("unavailable")
        with pytest.raises(UpstreamError, match="overloaded|problems"):
            await _drain(client)

    breaker = _trial(local_model, fail)
    assert breaker.state == "open" and breaker.reason == "server_error"


def test_a_trial_that_meets_a_spent_quota_pauses_for_the_quota_cooldown(
    local_model: LocalModel,
) -> None:
    async def spent(client: LLMClient) -> None:
        local_model.fault("insufficient_quota")
        with pytest.raises(UpstreamError) as err:
            await _drain(client)
        assert err.value.kind == "insufficient_quota"

    breaker = _trial(local_model, spent)
    assert breaker.state == "open" and breaker.reason == "insufficient_quota"
    assert breaker.retry_in_s() == QUOTA_COOLDOWN_S


def test_a_trial_whose_task_is_cancelled_lets_the_next_request_try(
    local_model: LocalModel,
) -> None:
    async def cancelled(client: LLMClient) -> None:
        local_model.fault("slow", delay_s=1.0)  # tokens keep coming long after the first
        first = asyncio.Event()

        async def consume() -> None:
            async for event in client.stream_chat(PROMPT, max_tokens=200, temperature=0):
                if isinstance(event, TextDelta):
                    first.set()

        task = asyncio.create_task(consume())
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    breaker = _trial(local_model, cancelled)
    assert breaker.state == "half_open" and breaker.admit() == "trial"


def test_a_trial_closed_by_its_consumer_lets_the_next_request_try(
    local_model: LocalModel,
) -> None:
    async def closed(client: LLMClient) -> None:
        local_model.fault("slow", delay_s=1.0)
        events = client.stream_chat(PROMPT, max_tokens=200, temperature=0)
        await _first_token(events)
        await events.aclose()  # GeneratorExit at the yield

    breaker = _trial(local_model, closed)
    assert breaker.state == "half_open" and breaker.admit() == "trial"


def test_a_trial_ended_by_any_other_exception_lets_the_next_request_try(
    local_model: LocalModel,
) -> None:
    async def broken(client: LLMClient) -> None:
        local_model.fault("slow", delay_s=1.0)
        events = client.stream_chat(PROMPT, max_tokens=200, temperature=0)
        await _first_token(events)
        with pytest.raises(RuntimeError, match="consumer failed"):
            await events.athrow(RuntimeError("consumer failed"))

    breaker = _trial(local_model, broken)
    assert breaker.state == "half_open" and breaker.admit() == "trial"


def test_a_request_let_through_while_closed_never_frees_someone_elses_trial(
    local_model: LocalModel,
) -> None:
    """Only the trial's own request may release it: an older request cancelled later must
    not let a second trial start beside the first."""

    async def go() -> None:
        clock = Clock()
        client = _client(local_model, clock)
        breaker = client.breakers[client.model]
        try:
            local_model.fault("slow", delay_s=1.0)
            early = client.stream_chat(PROMPT, max_tokens=200, temperature=0)
            await _first_token(early)  # admitted while closed
            breaker.record_failure("server_error")  # meanwhile, another request failed
            clock.now += 31
            assert breaker.admit() == "trial"  # a third request is the trial
            await early.aclose()  # the early request's client leaves
            assert breaker.admit() is None  # the trial is still running
        finally:
            await client.close()

    asyncio.run(go())
