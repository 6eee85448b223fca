"""`python -m app` on the embedded PostgreSQL: one log line per start-up phase, "ready" only
once listening, and the database gone when the app exits on SIGTERM, even after an earlier
run died without cleaning up; `python -m app.embedded_db stop` (`make stop`) for the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from app.embedded_db import postmaster_pid
from tests.app_process import free_port
from tests.conftest import ROOT, LocalModel, eventually


def _env(data_dir: Path, local_model: LocalModel, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {
        **env,
        "ENV": "dev",
        "DATA_DIR": str(data_dir),
        "LLM_BASE_URL": local_model.base_url,
        "INGEST_ON_START": "false",
        "STATUS_PROBE_ON_START": "false",
        "PORT": str(port),
        "LOG_LEVEL": "info",
        "LOG_FORMAT": "text",
    }


def _run_until_sigterm(data_dir: Path, local_model: LocalModel, log_path: Path) -> str:
    """Start the app, check "ready" means listening, SIGTERM it; returns its log."""
    port = free_port()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=ROOT,
            env=_env(data_dir, local_model, port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready_logged() -> bool:
            assert proc.poll() is None, log_path.read_text()
            return "ready in" in log_path.read_text()

        eventually(ready_logged, timeout_s=180, what='the "ready" line')
        # No retry: when "ready" is logged, the server already accepts connections.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        pid = postmaster_pid((data_dir / "pg").resolve())
        assert pid is not None, "the embedded PostgreSQL is not running"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert postmaster_pid((data_dir / "pg").resolve()) is None, "PostgreSQL outlived the app"
    assert not _alive(pid)
    return log_path.read_text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z"


def test_embedded_postgres_stops_on_sigterm_even_after_a_stale_pid(
    tmp_path: Path, local_model: LocalModel
) -> None:
    data_dir = tmp_path / "data"
    logged = _run_until_sigterm(data_dir, local_model, tmp_path / "first.log")
    lines = logged.splitlines()
    phases = [line for line in lines if "start-up:" in line]
    for name in ("embedded PostgreSQL in", "migrations in", "embedding model in", "services in"):
        assert any(name in line for line in phases), (name, phases)
    ready = next(i for i, line in enumerate(lines) if "ready in" in line)
    assert all(lines.index(p) < ready for p in phases)
    assert sum("ready in" in line for line in lines) == 1
    assert any("shutdown: embedded PostgreSQL stopped in" in line for line in lines[ready:])
    assert "pg_ctl" not in logged and "Loading weights" not in logged  # no start-up noise
    # An earlier run that was killed outright left its process id in pgserver's list.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    handles = (data_dir / "pg" / ".handle_pids.json").resolve()
    handles.write_text(json.dumps([int(dead.stdout)]))
    again = _run_until_sigterm(data_dir, local_model, tmp_path / "second.log")
    assert "ignored 1 process(es) that exited long ago" in again


def test_make_stop_stops_a_server_left_behind(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    # A process that starts the embedded server, then dies without running atexit.
    orphan = (
        "import os; from pathlib import Path; from app.embedded_db import "
        "start_embedded_postgres; start_embedded_postgres(Path(os.environ['DATA_DIR'])); "
        "os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", orphan], cwd=ROOT, env=env, check=True, timeout=120)
    pgdata = (data_dir / "pg").resolve()
    pid = postmaster_pid(pgdata)
    assert pid is not None, "the orphaned server should still be running"
    stopped = subprocess.run(
        [sys.executable, "-m", "app.embedded_db", "stop"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "stopped" in stopped.stdout
    assert postmaster_pid(pgdata) is None and not _alive(pid)
    again = subprocess.run(
        [sys.executable, "-m", "app.embedded_db", "stop"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "not running" in again.stdout


def test_pgserver_imports_without_the_runtime_dir_warning() -> None:
    """Where XDG_RUNTIME_DIR is unset (containers, CI), importing pgserver warns (the premise,
    checked); through `import_pgserver` it does not, with every warning made an error."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-W", "error", "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    bare = run("import pgserver")
    assert bare.returncode != 0 and "XDG_RUNTIME_DIR is not set" in bare.stderr
    ours = run("from app.embedded_db import import_pgserver; import_pgserver()")
    assert ours.returncode == 0, ours.stderr
