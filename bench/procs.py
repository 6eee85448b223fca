"""Processes the load benchmarks run beside themselves: the paced local model, and stopping
or waiting for `python -m app` and its workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

from bench.streams_procs import free_port, start, stop, wait_up


@contextmanager
def start_model() -> Iterator[str]:
    """The local model at 20 ms a piece (bench/gateway.py's `paced_model`) in its own uvicorn
    process; yields its base URL (no `/v1`), stops it on the way out."""
    port = free_port()
    proc = start(
        [sys.executable, "-m", "uvicorn", "--factory", "bench.gateway:paced_model",
         "--port", str(port), "--log-level", "warning"],
        {**os.environ, "LOG_LEVEL": "warning"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc, "/v1/models")
        yield url
    finally:
        stop(proc)


def _workers(proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """uvicorn's worker processes under `proc` (multiprocessing's resource tracker is not one)."""
    try:
        children = psutil.Process(proc.pid).children()
        return [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
    except psutil.Error:
        return []


def wait_workers(proc: subprocess.Popen[bytes], n: int, timeout_s: float = 300) -> None:
    """With `n` > 1, wait until `proc` has `n` worker processes and they have gone quiet (under
    0.1 s of CPU in the last second: start-up, which loads the embedder, is done). A worker
    still starting accepts no connection, so without this the first steps would measure one
    worker. Raises RuntimeError on timeout or when `proc` exits."""
    if n <= 1:
        return
    deadline = time.monotonic() + timeout_s
    previous: float | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the app exited during start-up")
        workers = _workers(proc)
        try:
            used = sum(sum(w.cpu_times()[:2]) for w in workers)
        except psutil.Error:
            used, workers = 0.0, []
        if len(workers) == n and previous is not None and used - previous < 0.1:
            return
        previous = used if len(workers) == n else None
        time.sleep(1.0)
    raise RuntimeError(f"{n} workers did not settle in {timeout_s:.0f}s")
