"""Cold start of the run command: `python -m app` on a fresh DATA_DIR, then a warm restart.

Each start is timed from spawning the process to /healthz answering 200 and to the first
/api/chat answer read to its end; then the process gets SIGINT and the stop is timed too.
The second start reuses the DATA_DIR (database initialised, docs already ingested).

Baseline, measured in the same run: a process that only imports the app and loads the
embedding model, the floor any start pays before PostgreSQL, migrations or ingest.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from app.settings import Settings
from bench.fixtures import DOCS, ROOT, ask, signed_in_client
from bench.table import DASH, Table, latency, ratio, seconds

NAME = "cold_start"
QUESTION = "How do I ingest PDF files?"
START_TIMEOUT_S = 240.0
POLL_INTERVAL_S = 0.05
MAX_POLLS = int(START_TIMEOUT_S / POLL_INTERVAL_S)
STOP_TIMEOUT_S = 60.0
HEALTHZ_PROBES = 20
# Prints the wall clock once loaded, so interpreter teardown is not counted.
BASELINE_CODE = (
    "import app.__main__, time; from app.rag.embedder import Embedder; Embedder(); "
    "print(time.time())"
)


@dataclass(frozen=True)
class Start:
    ready_s: float
    first_token_s: float
    answer_s: float
    stop_s: float | None  # None: it did not stop on SIGINT within the limit and was killed
    healthz_ms: float  # p50 of keep-alive GET /healthz once serving
    log_facts: list[str]


def run() -> list[Table]:
    with tempfile.TemporaryDirectory(prefix="ragship-bench-cold-") as tmp:
        base = Path(tmp)
        data, work = base / "data", base / "cwd"
        work.mkdir()
        try:
            baselines = [_baseline(work, data)]
            cold = _start_and_ask(work, data, base / "cold.log")
            warm = _start_and_ask(work, data, base / "warm.log")
            baselines.append(_baseline(work, data))
        finally:
            _stop_leftover_postgres(data / "pg")
    return [_table(baselines, cold, warm)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_env(data: Path, port: int) -> dict[str, str]:
    """The parent's environment minus any ragship setting, plus the benchmark's own."""
    settings = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in settings}
    env.update(
        ENV="dev",
        HOST="127.0.0.1",
        PORT=str(port),
        DATA_DIR=str(data),
        DOCS_DIR=str(DOCS),
        LOG_LEVEL="info",
        LOCAL_MODEL_TOKEN_DELAY_S="0",
        # The app of this checkout, whatever the editable install points at.
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
    )
    return env


def _baseline(work: Path, data: Path) -> float:
    """Seconds from spawn until a process has imported the app and loaded the model."""
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-c", BASELINE_CODE],
        cwd=work,
        env=_child_env(data, _free_port()),
        check=True,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )
    return float(done.stdout.split()[-1]) - started


def _start_and_ask(work: Path, data: Path, log: Path) -> Start:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=work,
            env=_child_env(data, port),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            ready = _wait_until_healthy(proc, url) - started
            with signed_in_client(url, timeout_s=60.0) as client:
                asked = time.perf_counter() - started
                timing = ask(client, QUESTION)
                healthz = latency([_timed_get(client, "/healthz") for _ in range(HEALTHZ_PROBES)])
            stop = _stop(proc)
        except Exception as err:
            raise RuntimeError(f"{err}\n--- {log.name} (tail) ---\n{_tail(log)}") from err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
    return Start(
        ready, asked + timing.ttft, asked + timing.total, stop, healthz.p50 * 1000, _log_facts(log)
    )


def _timed_get(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    client.get(path).raise_for_status()
    return time.perf_counter() - started


def _wait_until_healthy(proc: subprocess.Popen[bytes], url: str) -> float:
    """Poll /healthz, at most MAX_POLLS times and START_TIMEOUT_S; returns when it answered.

    Waiting on the process between polls doubles as the poll interval and notices at once
    when the process exits instead of becoming ready.
    """
    deadline = time.perf_counter() + START_TIMEOUT_S
    with httpx.Client(timeout=5.0) as client:
        for _ in range(MAX_POLLS):
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    return time.perf_counter()
            except httpx.TransportError:
                pass
            if time.perf_counter() > deadline:
                break
            try:
                code = proc.wait(timeout=POLL_INTERVAL_S)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"`python -m app` exited with {code} before /healthz answered")
    raise TimeoutError(f"/healthz did not answer 200 within {START_TIMEOUT_S:.0f}s")


def _stop(proc: subprocess.Popen[bytes]) -> float | None:
    """SIGINT, as Ctrl-C in `make dev`; the seconds until the process (and its DB) exited."""
    started = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)
        return None
    return time.perf_counter() - started


def _stop_leftover_postgres(pgdata: Path) -> None:
    """Stop the embedded PostgreSQL if a start was killed before it could stop it itself."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
        postmaster.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
        postmaster.wait(timeout=STOP_TIMEOUT_S)
    except (psutil.Error, ValueError, IndexError):
        pass


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _log_facts(log: Path) -> list[str]:
    """The start-up's own report: the ingest summary and the 'ready in' line."""
    wanted = ("ragship: ingest:", "ragship: ready in")
    lines = log.read_text(errors="replace").splitlines()
    return [line.split("ragship: ", 1)[1] for line in lines if any(w in line for w in wanted)]


def _table(baselines: list[float], cold: Start, warm: Start) -> Table:
    baseline = min(baselines)
    table = Table(
        "cold start of `python -m app` (embedded PostgreSQL, local model, DOCS_DIR=docs/; "
        "seconds from spawn)",
        ["start", "/healthz 200", "first token", "answer done", "stop", "ready vs baseline"],
    )
    table.add("baseline: imports + embedding model load", seconds(baseline), *[DASH] * 3, "x1.00")
    for label, start in (
        ("cold: fresh DATA_DIR (initdb, migrate, ingest)", cold),
        ("warm restart: same DATA_DIR, docs unchanged", warm),
    ):
        table.add(
            label,
            seconds(start.ready_s),
            seconds(start.first_token_s),
            seconds(start.answer_s),
            seconds(start.stop_s) if start.stop_s is not None else "killed",
            ratio(start.ready_s, baseline),
        )
    table.notes.append(
        "baseline: best of a run before and after the starts ("
        + ", ".join(f"{b:.2f}s" for b in baselines)
        + ")"
    )
    for label, start in (("cold", cold), ("warm", warm)):
        table.notes += [f"{label}: {fact}" for fact in start.log_facts]
        table.notes.append(
            f"{label}: keep-alive GET /healthz once serving, p50 of {HEALTHZ_PROBES}: "
            f"{start.healthz_ms:.2f} ms"
        )
    table.notes.append(
        f"/healthz polled every {POLL_INTERVAL_S * 1000:.0f} ms (at most {MAX_POLLS} polls, "
        f"{START_TIMEOUT_S:.0f}s); stop = SIGINT until exit; LOCAL_MODEL_TOKEN_DELAY_S=0"
    )
    return table
