"""`python -m bench [name ...]`: run the benchmarks (all of them by default), print each table."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shlex
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = (
    "ingest",
    "retrieval",
    "chat",
    "caps",
    "guardrails",
    "observability",
    "dashboard",
    "cold_start",
    "gc_pause",
    "hotpath",
    "hot_scopes",
    "deps",
    "upstream_transport",
    "embedding_precision",
    "scale",
    "streams",
    "gateway",
    "reservations",
    "settle_tail",
    "settle_writes",
    "loop_turns",
    "gil_switch",
    "embed_handoff",
    "tokenize_pool",
    "embed_cold",
    "retrieve_round_trips",
    "corpus_version",
    "levers",
)
# Run only when named: too slow (scale_1m, ceiling) or a part of another (scale_100k).
ON_REQUEST = ("scale_1m", "scale_100k", "ceiling")


def _command(argv: list[str]) -> str:
    executable = Path(sys.executable)
    try:
        shown = str(executable.relative_to(Path.cwd()))
    except ValueError:
        shown = str(executable)
    return shlex.join([shown, "-m", "bench", *argv])


def header(argv: list[str]) -> str:
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"ragship benchmarks | command: {_command(argv)} | "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC} | python {platform.python_version()} | "
        f"{platform.system()} {platform.machine()} | cpu_count={os.cpu_count()} | "
        f"load average at start: {load}"
    )


def _parse(argv: list[str]) -> list[str]:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run ragship's benchmarks and print their tables."
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run: {', '.join(BENCHMARKS + ON_REQUEST)}",
    )
    names: list[str] = parser.parse_args(argv).names
    unknown = [n for n in names if n not in BENCHMARKS + ON_REQUEST]
    if unknown:
        known = ", ".join(BENCHMARKS + ON_REQUEST)
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {known}")
    return names or list(BENCHMARKS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = _parse(argv)
    # pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns, uses /tmp.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    print(header(argv), flush=True)
    started = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        began = time.perf_counter()
        tables = module.run()
        for table in tables:
            print(f"\n{table.render()}", flush=True)
        print(f"  ({name}: {time.perf_counter() - began:.1f}s)", flush=True)
    print(f"\nall done in {time.perf_counter() - started:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
