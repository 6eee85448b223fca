"""WEB_CONCURRENCY: `python -m app` serves one port from several worker processes that
share nothing but PostgreSQL and Redis, and stops them all on SIGTERM. Started under a soft
limit of 512 open files (below systemd's default of 1,024), every worker runs with the
hard limit (app/startup.py `raise_open_file_limit`)."""

from __future__ import annotations

import signal
from pathlib import Path

import psutil

from tests.app_process import AppProcess, app_process
from tests.conftest import LocalModel, sign_in
from tests.sse import chat


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """uvicorn's worker processes (multiprocessing's resource tracker is not one)."""
    return [
        p
        for p in parent.children()
        if "resource_tracker" not in " ".join(p.cmdline()) and p.is_running()
    ]


def test_two_workers_serve_one_port_and_stop_together(
    db_url: str,
    redis_url: str,
    local_model: LocalModel,
    tmp_path: Path,
    corpus: object,
    onnx_env: dict[str, str],
) -> None:
    env = {
        **onnx_env,  # several workers are a production setting: the image embeds with ONNX
        "WEB_CONCURRENCY": "2",
        "DATABASE_URL": db_url,
        "LLM_BASE_URL": local_model.base_url,
        "RATE_LIMIT_STORE": redis_url,
        "RATE_LIMIT_STORE_TIMEOUT_S": "10",
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "warning",
    }

    def two_workers(app: AppProcess) -> bool:
        return len(_workers(psutil.Process(app.proc.pid))) == 2

    with app_process(env, ready=two_workers, timeout_s=240, nofile=(512, 8192)) as app:
        proc, url = app.proc, app.url
        assert psutil.Process(proc.pid).rlimit(psutil.RLIMIT_NOFILE) == (8192, 8192)
        for worker in _workers(psutil.Process(proc.pid)):
            assert worker.rlimit(psutil.RLIMIT_NOFILE) == (8192, 8192)
        with sign_in(url, "workers@example.com") as client:
            for _ in range(4):
                assert chat(client, "How do I run the tests?")[-1][0] == "done"
        workers = _workers(psutil.Process(proc.pid))
        rss = [w.memory_info().rss / 2**20 for w in workers]
        print(f"RSS per worker: {', '.join(f'{r:.0f} MiB' for r in rss)}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
