"""`python -m app` as a real process, for the tests that need one (signals, several workers
or replicas, start-up): on a free port, ready once `/healthz` answers, always stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from tests.conftest import ROOT, eventually


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AppProcess:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path | None  # stdout and stderr, when asked for

    def logged(self) -> str:
        return self.log.read_text() if self.log else ""


@contextmanager
def app_process(
    env: dict[str, str],
    *,
    log: Path | None = None,
    ready: Callable[[AppProcess], bool] = lambda _: True,
    timeout_s: float = 120,
    nofile: tuple[int, int] | None = None,
) -> Iterator[AppProcess]:
    """Run `python -m app` in dev mode with `env` over the test's environment (no ingest on
    start, quality sampling, start-up probe or response cache unless `env` asks for them), wait until `/healthz` answers 200 and `ready` holds,
    and kill it on the way out if it is still running. Raises AssertionError when it exits
    during start-up (with its log, when there is one). `nofile`: the (soft, hard) limit on
    open files it starts with (util-linux's `prlimit`), as a host's default would set it."""
    with app_processes([env], log=log, ready=ready, timeout_s=timeout_s, nofile=nofile) as apps:
        yield apps[0]


@contextmanager
def app_processes(
    envs: list[dict[str, str]],
    *,
    log: Path | None = None,
    ready: Callable[[AppProcess], bool] = lambda _: True,
    timeout_s: float = 120,
    nofile: tuple[int, int] | None = None,
) -> Iterator[list[AppProcess]]:
    """`app_process` for several replicas at once: all start together, then each is waited
    for. With `log`, replica n writes to `log` (n = 0) or `log` suffixed `.n`."""
    apps = [
        _start(env, log.with_suffix(f".{n}") if log and n else log, nofile)
        for n, env in enumerate(envs)
    ]
    try:
        for app in apps:
            eventually(lambda app=app: _up(app, ready), timeout_s=timeout_s, what="python -m app")
        yield apps
    finally:
        for app in apps:
            if app.proc.poll() is None:
                _kill_tree(app.proc)


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the app and its worker processes: killed alone, the supervisor leaves its
    uvicorn workers running (orphans holding a port, memory and database connections)."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    proc.kill()
    proc.wait()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=30)


def _start(env: dict[str, str], log: Path | None, nofile: tuple[int, int] | None) -> AppProcess:
    port = free_port()
    # As `make_settings` for the apps run in-process: no quality sampling and no start-up
    # probe of the upstream (a judge call or a ping behind the test's back would use up the
    # faults a test queues on the local model), and no response cache: tests ask the same
    # questions of the shared database and expect them to reach the model (with the cache
    # on, an answer cached by one test was replayed at full speed to the next, which had
    # queued a slow upstream to stop mid-answer).
    defaults = {
        "ENV": "dev",
        "INGEST_ON_START": "false",
        "QUALITY_SAMPLE_RATE": "0",
        "STATUS_PROBE_ON_START": "false",
        "RESPONSE_CACHE": "false",
    }
    full = {**os.environ, **defaults, **env, "PORT": str(port)}
    with ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log else subprocess.DEVNULL
        # prlimit sets the limit and execs the command: the pid stays the app's.
        limit = ["prlimit", f"--nofile={nofile[0]}:{nofile[1]}"] if nofile else []
        proc = subprocess.Popen(
            [*limit, sys.executable, "-m", "app"], cwd=ROOT, env=full, stdout=out, stderr=out
        )
    return AppProcess(proc, f"http://127.0.0.1:{port}", log)


def _up(app: AppProcess, ready: Callable[[AppProcess], bool]) -> bool:
    assert app.proc.poll() is None, f"python -m app exited during start-up\n{app.logged()}"
    try:
        healthy = httpx.get(f"{app.url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
    return healthy and ready(app)
