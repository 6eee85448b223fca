"""The circuit breaker's states, on a controlled clock."""

from __future__ import annotations

from app.llm.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


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
