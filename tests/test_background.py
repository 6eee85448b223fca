"""The background job runner every replica's timers use (app/background.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.background import repeat


def test_a_failing_run_is_logged_and_the_job_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> list[str]:
        runs: list[str] = []
        second = asyncio.Event()

        async def job() -> None:
            runs.append("run")
            if len(runs) == 1:
                raise RuntimeError("the database went away")
            second.set()

        task = asyncio.create_task(repeat(job, every_s=0.01, what="test job", first_now=True))
        await asyncio.wait_for(second.wait(), timeout=30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # cancellation ends the loop; it is not swallowed as a failure
        return runs

    with caplog.at_level(logging.ERROR, logger="ragship.background"):
        runs = asyncio.run(scenario())
    assert len(runs) >= 2
    failures = [r for r in caplog.records if r.getMessage() == "test job failed"]
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_first_now_decides_whether_the_first_run_waits_an_interval() -> None:
    async def first_run_after(first_now: bool) -> bool:
        ran = asyncio.Event()

        async def job() -> None:
            ran.set()

        task = asyncio.create_task(repeat(job, every_s=3600, what="t", first_now=first_now))
        for _ in range(20):  # let the task run as far as it can without time passing
            await asyncio.sleep(0)
        task.cancel()
        return ran.is_set()

    assert asyncio.run(first_run_after(True)) is True
    assert asyncio.run(first_run_after(False)) is False
