"""Processes for the streams benchmark: start with logs kept, wait until up, sample the tree.

Each process's stdout and stderr go to a file in the run's temporary folder, so a failure
under load can be read back (tracebacks, the app's upstream warnings) instead of vanishing.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.fixtures import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `args` in the repository root, stdout and stderr appended to `log` (or
    discarded without one)."""
    if log is None:
        return subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    with log.open("ab") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_up(
    url: str, proc: subprocess.Popen[bytes], path: str = "/healthz", timeout_s: float = 300
) -> None:
    """Poll `url + path` until it answers 200; raise when `proc` exits or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited during start-up (code {proc.returncode})")
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start in {timeout_s:.0f}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@dataclass(frozen=True)
class TreeSample:
    """One look at a server process and its children: RSS of each worker (bytes), the
    supervisor's RSS (bytes; 0 when it is the only process), descriptors of all together."""

    worker_rss: tuple[int, ...]
    supervisor_rss: int
    fds: int


def sample_tree(root: psutil.Process) -> TreeSample:
    """RSS per worker and total open descriptors of `root` and all its descendants (psutil).

    With one worker, `root` is the worker. With uvicorn's supervisor (WEB_CONCURRENCY > 1)
    the workers are the children multiprocessing started (`spawn_main` in their command
    line); any other helper (its resource tracker) counts towards the descriptors only."""
    try:
        children = root.children(recursive=True)
        fds, workers = root.num_fds(), []
        own = root.memory_info().rss
    except psutil.NoSuchProcess:
        return TreeSample((), 0, 0)
    for proc in children:
        try:
            fds += proc.num_fds()
            if any("spawn_main" in part for part in proc.cmdline()):
                workers.append(proc.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    if not workers:
        return TreeSample((own,), 0, fds)
    return TreeSample(tuple(workers), own, fds)


def tree_cpu_s(root: psutil.Process) -> float:
    """User plus system CPU seconds `root` and its live descendants have used (psutil); 0 for
    a process that has gone. A child that exited in between no longer counts."""
    total = 0.0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total
