"""The streams benchmark's clients spread over K processes, so that the client is not the limit.

One asyncio process holding 1,000 paced streams fell behind by itself (its loop woke 84 ms
late at p95 with the model alone), which made the direct baseline and ragship look slower
than they were. Here each of K processes (bench/streams_shard.py) holds its share on its own
loop; they are started, imported, then told to go at once. Meanwhile this process probes
ragship's `/healthz` and samples its processes (bench/streams_client.py's watcher), and
measures the CPU the servers used. The shares' results are merged (bench/streams_merge.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import psutil

from bench.fixtures import ROOT
from bench.streams_client import Hold, User, watch
from bench.streams_merge import Merged, Part, merge
from bench.streams_procs import tree_cpu_s
from bench.streams_shard import user_to_json

READY_TIMEOUT_S = 120


def direct_shares(n: int, k: int) -> list[int]:
    """`n` streams over at most `k` processes as evenly as can be (no empty share)."""
    return [c for c in (n // k + (j < n % k) for j in range(k)) if c]


def chat_shares(n: int, users: int, k: int) -> list[tuple[list[int], int]]:
    """Stream i is asked by user i mod `users` (as one client would ask them), and user u's
    streams go to process u mod `k`, so no user's streams are split over processes (the
    per-user limit holds per process). Per non-empty process: its users' indices, and how
    many streams it holds (at most as many per user as one client would have sent)."""
    members: list[list[int]] = [[] for _ in range(k)]
    counts = [0] * k
    for u in range(min(users, n)):
        members[u % k].append(u)
    for i in range(n):
        counts[(i % users) % k] += 1
    return [(m, c) for m, c in zip(members, counts, strict=True) if c]


def direct_specs(
    url: str, n: int, k: int, request: dict[str, Any], *, ramp_s: float = 0.0
) -> list[dict[str, Any]]:
    """The K client processes' specs for `n` streams straight to the model, each process's
    share opened evenly over `ramp_s` seconds (bench/streams_shard.py reads them)."""
    return [
        {"target": "direct", "url": url, "n": c, "request": request, "ramp_s": ramp_s}
        for c in direct_shares(n, k)
    ]


def chat_specs(
    url: str, n: int, k: int, users: list[User], question: str, *, ramp_s: float = 0.0
) -> list[dict[str, Any]]:
    """As `direct_specs`, for `n` answers from ragship asked by `users`."""
    return [
        {
            "target": "chat",
            "url": url,
            "n": count,
            "ramp_s": ramp_s,
            "question": question,
            "users": [user_to_json(users[u]) for u in members],
        }
        for members, count in chat_shares(n, len(users), k)
    ]


@dataclass
class Spread:
    """A level held by several processes: the merged result (with this process's /healthz
    probes and tree samples in `merged.hold`) and the servers' CPU over the hold, in % of one
    core, by name."""

    merged: Merged
    server_cpu_pct: dict[str, float]


def hold_spread(
    specs: list[dict[str, Any]],
    folder: Path,
    *,
    servers: dict[str, psutil.Process],
    probe: tuple[str, psutil.Process] | None = None,
) -> Spread:
    """Run one client process per spec, files (spec-i.json, result-i.json, client-i.log) in
    `folder`; while they hold, probe `probe`'s URL and sample its tree. Raises RuntimeError
    when a process does not get ready in READY_TIMEOUT_S or exits with an error (its output
    file is named)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, spec in enumerate(specs):
        (folder / f"spec-{i}.json").write_text(json.dumps(spec))
    logs = [(folder / f"client-{i}.log").open("ab") for i in range(len(specs))]
    try:
        hold, used = asyncio.run(_hold(folder, logs, servers, probe))
    finally:
        for log in logs:
            log.close()
    parts = [
        Part.from_json(json.loads((folder / f"result-{i}.json").read_text()))
        for i in range(len(specs))
    ]
    merged = merge(parts)
    merged.hold.healthz, merged.hold.trees = hold.healthz, hold.trees
    merged.hold.probe_failures = hold.probe_failures
    return Spread(merged, used)


async def _hold(
    folder: Path,
    logs: Sequence[BinaryIO],
    servers: dict[str, psutil.Process],
    probe: tuple[str, psutil.Process] | None,
) -> tuple[Hold, dict[str, float]]:
    """Start the clients, wait for each one's `ready`, tell all to go, wait for their exits.
    Returns this process's probes and the servers' CPU % over the hold."""
    procs = []
    try:
        for i, log in enumerate(logs):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.streams_shard",
                    str(folder / f"spec-{i}.json"),
                    str(folder / f"result-{i}.json"),
                    cwd=ROOT,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                )  # fmt: skip
            )
        for i, proc in enumerate(procs):
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
            if line.strip() != b"ready":
                raise RuntimeError(f"client {i} did not start: see {folder}/client-{i}.log")
        hold, stop = Hold(), asyncio.Event()
        watcher = asyncio.create_task(watch(probe[0], probe[1], hold, stop)) if probe else None
        cpu = {name: tree_cpu_s(p) for name, p in servers.items()}
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
            proc.stdin.close()
        codes = await asyncio.gather(*(proc.wait() for proc in procs))
        wall = time.perf_counter() - started
        used = {name: 100 * (tree_cpu_s(p) - cpu[name]) / wall for name, p in servers.items()}
        stop.set()
        if watcher is not None:
            await watcher
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for i, code in enumerate(codes):
        if code != 0:
            raise RuntimeError(f"client {i} exited with {code}: see {folder}/client-{i}.log")
    return hold, used
