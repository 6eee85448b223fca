"""WEB_CONCURRENCY: `python -m app` serves one port from several worker processes that
share nothing but PostgreSQL and Redis, and stops them all on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from tests.conftest import ROOT, LocalModel, eventually, sign_in
from tests.sse import chat


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """uvicorn's worker processes (multiprocessing's resource tracker is not one)."""
    return [
        p
        for p in parent.children()
        if "resource_tracker" not in " ".join(p.cmdline()) and p.is_running()
    ]


def test_two_workers_serve_one_port_and_stop_together(
    db_url: str, redis_url: str, local_model: LocalModel, tmp_path: Path, corpus: object
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "ENV": "dev",
        "WEB_CONCURRENCY": "2",
        "PORT": str(port),
        "DATABASE_URL": db_url,
        "LLM_BASE_URL": local_model.base_url,
        "RATE_LIMIT_STORE": redis_url,
        "RATE_LIMIT_STORE_TIMEOUT_S": "10",
        "INGEST_ON_START": "false",
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    parent = psutil.Process(proc.pid)

    def ready() -> bool:
        assert proc.poll() is None, "python -m app exited during start-up"
        try:
            up = httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
        return up and len(_workers(parent)) == 2

    try:
        eventually(ready, timeout_s=240, what="two workers to start")
        with sign_in(url, "workers@example.com") as client:
            for _ in range(4):
                assert chat(client, "How do I run the tests?")[-1][0] == "done"
        workers = _workers(parent)
        rss = [w.memory_info().rss / 2**20 for w in workers]
        print(f"RSS per worker: {', '.join(f'{r:.0f} MiB' for r in rss)}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
