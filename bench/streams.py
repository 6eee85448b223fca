"""Concurrent answers held open: 200, 500 and 1,000 streams, against a direct baseline.

ragship runs as its own process (`python -m app`, WEB_CONCURRENCY workers, the ONNX
embedder as the image has it, PostgreSQL and Redis as in production) so its memory, file
descriptors and event loops are its own; the built-in local model runs in another process
with a per-piece delay, so each answer is paced to a known length. N answers are opened at
once, two per signed-in user (the default per-user limit: one user holding all N made every
reservation and settlement queue on that user's spend counter row, and the answers' settling
timed out on the drained pool); a 503 with `Retry-After` (the overload bound,
MAX_INFLIGHT_ADMISSIONS) is retried after the time it names, as a client should, and
counted. While the streams are held, `/healthz` is timed every 0.2 s: its round trip is a
proxy for the serving worker's event-loop lag (with several workers, whichever worker takes
the probe), not a measurement inside the loop. The streams are held by CLIENTS processes
(bench/streams_fanout.py), each on its own event loop, whose loop lag and CPU are measured
too, so a slow client is not mistaken for a slow server; so is the CPU the model and
ragship used over each hold (the model's, to tell whether it is the limit of the baseline).

Baseline, in the same run: the same N streams straight to the upstream with the request
ragship sends it. The p95 target is relative to the paced length; when the upstream itself
is slower than its pace at N, that is the bench's limit, not ragship's.

Every process's output is kept in a folder (printed under the table) for its tracebacks.
    python -m bench streams                       # 1 and 2 workers, 200/500/1,000 streams
    python -m bench.streams --levels 200 --workers 2          # one configuration
    python -m bench.streams --levels 1000 --clients 4 --model-workers 2  # model in 2 processes
    python -m bench.streams --levels 1000 --workers 2 --ramp-s 20  # opened over 20 s
    python -m bench.streams --levels 1000 --workers 2 --ramp-s 90 --token-delay-s 0.75
        # answers of about 115 s: 1,000 open at once from about 11 arrivals a second
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.fixtures import (
    DOCS,
    ingest_corpus,
    onnx_model,
    shared_embedder,
    temp_database,
    temp_redis,
)
from bench.streams_client import sign_in_users
from bench.streams_fanout import Spread, chat_specs, direct_specs, hold_spread
from bench.streams_merge import peak_held
from bench.streams_model import TOKEN_DELAY_S, model_command, model_env, upstream_request
from bench.streams_procs import free_port, sample_tree, start, stop, wait_up
from bench.table import Table, latency

NAME = "streams"
LEVELS = (200, 500, 1000)
# Client processes the streams are spread over: one asyncio process holding 1,000 paced
# streams was itself late (loop lag p95 84 ms with the model alone).
CLIENTS = 4
QUESTION = "How do I ingest PDF files?"
# Answers each user holds at once: MAX_CONCURRENT_STREAMS's default. One user holding all
# N serialises every reservation and settlement on that user's spend counter row (issue 17).
STREAMS_PER_USER = 2
COLUMNS = [
    "target", "streams", "peak held", "done", "errors", "503 retried", "p50 s", "p95 s",
    "p95/paced",
    "healthz p50/p95 ms", "client lag p95 ms (max/proc)", "CPU % model app (clients)",
    "RSS MiB/worker idle>peak", "fds idle>peak",
]  # fmt: skip


def run() -> list[Table]:
    return [measure(LEVELS, workers=1), measure(LEVELS, workers=2)]


def _app_env(env: dict[str, str], *, top: int, workers: int, **urls: str) -> dict[str, str]:
    return {
        **env,
        "ENV": "dev",
        "PORT": str(urls["port"]),
        "DATABASE_URL": urls["database"],
        "RATE_LIMIT_STORE": urls["redis"],
        "LLM_BASE_URL": f"{urls['model']}/v1",
        "WEB_CONCURRENCY": str(workers),
        "EMBEDDING_BACKEND": "onnx",
        "EMBEDDING_ONNX_DIR": urls["onnx"],
        "INGEST_ON_START": "false",
        "MIGRATE_ON_START": "false",
        "RATE_LIMIT_REQUESTS": str(20 * top),
        "MAX_CONCURRENT_STREAMS": str(STREAMS_PER_USER),
        "USER_DAILY_CAP_USD": "1000",
        "GLOBAL_DAILY_CAP_USD": "100000",
        # Every answer from the paced model: with the cache on, the held streams would
        # replay the first answer at once instead of streaming at the model's pace.
        "RESPONSE_CACHE": "false",
        # No periodic status probe during the run (the one at start-up comes first): a probe
        # that reached the model between the paced answer's request and its first token
        # made `upstream_request` read the probe's instead and stop the bench (a race).
        "STATUS_PROBE_INTERVAL_S": "3600",
    }


def measure(
    levels: tuple[int, ...],
    *,
    workers: int,
    direct: bool = True,
    clients: int = CLIENTS,
    model_workers: int = 1,
    ramp_s: float = 0.0,
    token_delay_s: float = TOKEN_DELAY_S,
) -> Table:
    """One table: per level, a direct row (unless `direct` is false) and a ragship row, the
    streams held by `clients` processes, the model served by `model_workers` processes."""
    table = Table(
        f"Answers held open at once ({STREAMS_PER_USER} per user, by {clients} client "
        f"processes{f', opened over {ramp_s:g}s' if ramp_s else ''}): ragship with "
        f"{workers} worker(s) against the local model ({model_workers} process(es)) paced "
        f"at {token_delay_s:g}s a piece, and the model alone (direct)",
        COLUMNS,
    )
    logs = Path(tempfile.mkdtemp(prefix="ragship-bench-streams-"))
    embedder = shared_embedder()
    with temp_database() as database, temp_redis() as redis, onnx_model() as onnx:
        ingest_corpus(database, embedder, [DOCS])
        model_url = f"http://127.0.0.1:{free_port()}"
        app_port = free_port()
        app_url = f"http://127.0.0.1:{app_port}"
        env = {**os.environ, "LOG_LEVEL": "warning"}
        model_port = model_url.rsplit(":", 1)[1]
        model = start(
            model_command(model_port, model_workers),
            model_env(env, token_delay_s),
            logs / "model.log",
        )
        app_env = _app_env(
            env, top=max(levels), workers=workers, port=str(app_port), database=database,
            redis=redis, model=model_url, onnx=str(onnx),
        )  # fmt: skip
        app = start([sys.executable, "-m", "app"], app_env, logs / "app.log")
        try:
            wait_up(model_url, model, "/v1/models")
            wait_up(app_url, app)
            paced, request = _paced_answer(app_url, model_url)
            users = asyncio.run(sign_in_users(app_url, -(-max(levels) // STREAMS_PER_USER)))
            tree = psutil.Process(app.pid)
            servers = {"model": psutil.Process(model.pid), "app": tree}
            offsets = {name: 0 for name in ("app.log", "model.log")}
            for n in levels:
                if direct:
                    specs = direct_specs(model_url, n, clients, request, ramp_s=ramp_s)
                    spread = hold_spread(specs, logs / f"direct-{n}", servers=servers)
                    _row(table, "direct", n, spread, paced, None)
                idle = sample_tree(tree)
                asked = users[: -(-n // STREAMS_PER_USER)]
                specs = chat_specs(app_url, n, clients, asked, QUESTION, ramp_s=ramp_s)
                spread = hold_spread(
                    specs, logs / f"ragship-{n}", servers=servers, probe=(app_url, tree)
                )
                _row(table, "ragship", n, spread, paced, idle)
                table.notes += _log_lines(logs, offsets, n)
        finally:
            stop(app)
            stop(model)
            shutil.rmtree(onnx, ignore_errors=True)  # 87 MB; the logs stay
    table.notes.append(
        f"paced: one answer alone through ragship, {paced:.1f}s, measured before the holds; "
        "healthz: round trip of GET /healthz every 0.2s, a proxy for a worker's event-loop "
        "lag; client lag: how late the client processes' loops woke, all samples pooled (the "
        "bench's limit), and each process's worst; CPU: % of one core over the hold, the "
        "model's and ragship's process trees, and each client process"
    )
    table.notes.append(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    table.notes.append(f"process output kept in {logs}")
    return table


def _paced_answer(app_url: str, model_url: str) -> tuple[float, dict[str, Any]]:
    """Sign in, time one answer alone (seconds), and read the upstream request it made
    (`upstream_request`) as soon as its first token is in: read after a long answer, the
    model's last request was the status prober's (every 60 s), and the direct side measured
    that probe's short answer (6.8 s at a 115 s pace)."""
    with httpx.Client(base_url=app_url, timeout=600, headers={"Origin": app_url}) as c:
        c.post("/auth/dev-login", data={"email": "streams@localhost.test"})
        c.headers["X-CSRF-Token"] = c.get("/api/me").json()["csrf_token"]
        started = time.perf_counter()
        request, lines = None, []
        with c.stream("POST", "/api/chat", json={"message": QUESTION}) as answer:
            for line in answer.iter_lines():
                lines.append(line)
                if request is None and line == "event: token":
                    request = upstream_request(model_url, QUESTION)
        paced = time.perf_counter() - started
        if answer.status_code != 200 or "event: done" not in lines or request is None:
            raise RuntimeError(f"the paced answer failed: {answer.status_code} {lines[-3:]}")
        return paced, request


def _row(table: Table, target: str, n: int, spread: Spread, paced: float, idle: Any) -> None:
    hold, merged = spread.merged.hold, spread.merged
    took, health = latency(hold.durations), latency(hold.healthz)
    lag = latency(hold.client_lag)
    worst = "/".join(f"{x * 1000:.0f}" for x in merged.lag_max)
    cpu = spread.server_cpu_pct
    clients = "/".join(f"{x:.0f}" for x in merged.cpu_pct)
    if idle is None:
        rss = fds = healthz = "-"
    else:
        peaks = [max(t.worker_rss[i] for t in hold.trees) for i in range(len(idle.worker_rss))]
        rss = " ".join(
            f"{a / 2**20:.0f}>{b / 2**20:.0f}" for a, b in zip(idle.worker_rss, peaks, strict=True)
        )
        fds = f"{idle.fds}>{max((t.fds for t in hold.trees), default=0)}"
        healthz = f"{health.p50 * 1000:.0f}/{health.p95 * 1000:.0f}"
    table.add(
        target, n, peak_held(hold.held), hold.done, sum(hold.errors.values()), hold.retried,
        f"{took.p50:.1f}", f"{took.p95:.1f}", f"{took.p95 / paced:.2f}", healthz,
        f"{lag.p95 * 1000:.0f} ({worst})", f"{cpu['model']:.0f} {cpu['app']:.0f} ({clients})",
        rss, fds,
    )  # fmt: skip
    print(f"  streams: {' | '.join(table.rows[-1])}", file=sys.stderr, flush=True)  # progress
    if hold.probe_failures:
        table.notes.append(f"{target} {n}: /healthz probes failed {dict(hold.probe_failures)}")
    for kind, count in hold.errors.most_common():
        table.notes.append(f"{target} {n}: {count}x {kind}, e.g. {hold.examples[kind]}")


def _log_lines(logs: Path, offsets: dict[str, int], n: int) -> list[str]:
    """Tracebacks and warnings each process logged during level `n`, counted by line."""
    notes = []
    for name, offset in offsets.items():
        text = (logs / name).read_text(errors="replace")
        offsets[name] = len(text)
        lines = [line for line in text[offset:].splitlines() if line.strip()]
        tracebacks = sum(line.startswith("Traceback") for line in lines)
        flagged = [line for line in lines if "WARNING" in line or "ERROR" in line]
        if tracebacks or flagged:
            notes.append(
                f"{name} during {n}: {tracebacks} tracebacks, {len(flagged)} warnings/errors"
                + (f", first: {flagged[0][:200]}" if flagged else "")
            )
    return notes


def _seconds(value: str) -> float:
    """A positive number of seconds, for argparse (a clear error, not a model that fails
    to start)."""
    seconds = float(value)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__)
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-direct", action="store_true", help="skip the direct baseline")
    parser.add_argument(
        "--clients", type=int, default=CLIENTS, help="client processes holding the streams"
    )
    parser.add_argument(
        "--model-workers", type=int, default=1, help="uvicorn processes serving the paced model"
    )
    parser.add_argument(
        "--ramp-s", type=float, default=0.0, help="open each level's streams over this long"
    )
    parser.add_argument(
        "--token-delay-s",
        type=_seconds,
        default=TOKEN_DELAY_S,
        help="the model's pace, seconds a piece (longer answers need fewer arrivals a second)",
    )
    args = parser.parse_args(argv)
    from bench.__main__ import header

    line = header(["streams", *(argv if argv is not None else sys.argv[1:])])
    print(line.replace(" -m bench streams", " -m bench.streams", 1), flush=True)
    table = measure(
        tuple(args.levels),
        workers=args.workers,
        direct=not args.no_direct,
        clients=args.clients,
        model_workers=args.model_workers,
        ramp_s=args.ramp_s,
        token_delay_s=args.token_delay_s,
    )
    print(table.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
