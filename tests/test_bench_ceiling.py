"""`python -m bench ceiling`'s rules: open-loop arrivals, when a side stops stepping up, and
which rate is its ceiling (bench/openloop.py), and the ragship configurations it parses."""

from __future__ import annotations

import asyncio

import pytest

from bench.ceiling import Config, configs
from bench.openloop import Outcome, Step, ceiling, keep_going, offer, requests_for


def _step(rate: float, p95_ms: float, *, errors: int = 0, shed: int = 0) -> Step:
    """A step whose 20 answers all took `p95_ms` to their first text."""
    return Step(rate=rate, sent=20, ttft=[p95_ms / 1000] * 20, errors=errors, shed=shed)


def test_a_step_passes_only_with_every_answer_and_p95_within_one_second() -> None:
    assert _step(4, 1000).passes()
    assert not _step(4, 1001).passes()
    assert not _step(4, 200, errors=1).passes()
    assert not _step(4, 200, shed=1).passes()
    assert not Step(rate=4, sent=20, errors=20).passes()  # nothing answered
    # the p95, not the mean: one slow answer in 20 is within it, two are not
    assert Step(rate=4, ttft=[0.1] * 19 + [5.0]).passes()
    assert not Step(rate=4, ttft=[0.1] * 18 + [5.0] * 2).passes()


def test_stepping_stops_one_step_after_the_first_failure() -> None:
    assert keep_going([_step(2, 100), _step(4, 300)])
    assert keep_going([_step(2, 100), _step(4, 1500)])  # failed: one more step
    assert not keep_going([_step(2, 100), _step(4, 1500), _step(6, 2500)])
    assert not keep_going([_step(2, 100), _step(4, 1500), _step(6, 500)])  # a noisy pass
    assert keep_going([_step(2, 100, errors=1)])
    assert not keep_going([_step(2, 100, shed=2), _step(4, 100)])


def test_the_ceiling_is_the_highest_rate_passed_with_every_lower_rate_passed() -> None:
    steps = [_step(2, 100), _step(4, 200), _step(6, 900), _step(8, 1200), _step(12, 800)]
    assert ceiling(steps) == 6  # 12 passed after 8 failed: noise, not a ceiling
    assert ceiling(list(reversed(steps))) == 6  # by rate, not by order of the list
    assert ceiling([_step(2, 100), _step(4, 100, errors=1)]) == 2
    assert ceiling([_step(2, 1100), _step(4, 100)]) is None
    assert ceiling([_step(2, 100), _step(4, 100)]) == 4
    assert ceiling([]) is None


def test_a_step_has_rate_times_length_requests_and_a_floor_for_slow_rates() -> None:
    assert requests_for(16, 4.0, 12) == 64
    assert requests_for(2, 4.0, 12) == 12
    assert requests_for(6.5, 2.0, 1) == 13


def test_requests_are_sent_on_schedule_while_earlier_ones_are_still_open() -> None:
    """Open loop: every request starts before any finishes (a closed loop, waiting for an
    answer before the next send, would never release the gate)."""
    n, rate = 8, 400.0

    async def scenario() -> tuple[Step, list[float]]:
        started: list[float] = []
        gate = asyncio.Event()

        async def send(scheduled: float) -> Outcome:
            started.append(scheduled)
            if len(started) == n:
                gate.set()
            await gate.wait()
            return Outcome("ok", 0.01) if len(started) % 2 else Outcome("shed")

        step = await asyncio.wait_for(offer(rate, n, send), timeout=60)
        return step, started

    step, scheduled = asyncio.run(scenario())
    assert step.sent == n and len(step.ttft) + step.shed + step.errors == n
    gaps = [round((b - a) * rate, 6) for a, b in zip(scheduled, scheduled[1:], strict=False)]
    assert gaps == [1.0] * (n - 1)
    assert step.wall_s > 0


def test_outcomes_are_counted_by_kind() -> None:
    step = Step(rate=2)
    for outcome in (
        Outcome("ok", 0.2),
        Outcome("shed"),
        Outcome("error", why="status 500"),
        Outcome("ok", None),
    ):
        step.add(outcome, end=1.0)
    assert (step.ttft, step.ends, step.shed, step.errors) == ([0.2], [1.0], 1, 2)
    assert step.why == {"status 500": 1, "unknown": 1}


def test_completions_per_second_count_answers_between_the_first_end_and_the_last() -> None:
    step = Step(rate=8)
    for end in (10.0, 10.5, 11.0, 12.0, 14.0):  # 4 more answers in 4 s after the first
        step.add(Outcome("ok", 0.1), end=end)
    step.add(Outcome("error"), end=30.0)  # a failure delivers nothing
    assert step.completions_per_s == 1.0
    assert Step(rate=8).completions_per_s == 0.0


def test_ragship_configurations_parse_and_bad_ones_are_refused() -> None:
    assert configs("torch:1, onnx:1,onnx:2") == [
        Config("torch", 1),
        Config("onnx", 1),
        Config("onnx", 2),
    ]
    assert Config("onnx", 2).label == "ragship onnx, 2 workers"
    assert Config("torch", 1).label == "ragship torch, 1 worker"
    for bad in ("torch", "gpu:1", "onnx:0", "onnx:two"):
        with pytest.raises(ValueError, match="BACKEND:WORKERS"):
            configs(bad)
