"""A query's tokens made on its own thread (`Tokenizer.encode`, ragship's) against the batch
call (`encode_batch`, before), while the event loop's thread keeps computing.

The batch call hands even one text to the tokenizer's thread pool (rayon, one thread per
core), whose threads then spin for a while for more work. Here a thread embeds one query
every `PACE_MS` (the deploy image's embedder: onnxruntime, int8, one thread, as the server
runs it), while the main thread runs a fixed piece of Python work (a JSON round trip, as a
request's parsing is) again and again, as the event loop does beside a query embedding.
Sides alternate window by window, `WINDOWS` each.

Columns: embeddings done and each one's time; the main thread's piece of work p50 / p95
(µs: what the loop loses to the other threads); the CPU of every thread but the main one
per embedding (ms: the embedding's own and the pool's spinning); the threads in the
process after the side's last window. The app's GIL switch interval (1 ms) throughout.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable

from app.rag.onnx_embedder import OnnxEmbedder
from bench.fixtures import onnx_model
from bench.table import Table, latency

NAME = "tokenize_pool"
WINDOW_S = 2.0
WINDOWS = 3  # per side
PACE_MS = 5.0  # one query embedding started this often
SWITCH_INTERVAL_S = 0.001  # GIL_SWITCH_INTERVAL_MS's default
QUESTION = "How do I ingest PDF files?"
PAYLOAD = {"message": QUESTION * 8, "conversation_id": None, "n": list(range(50))}


def _batch_call(embedder: OnnxEmbedder, text: str) -> list[float]:
    """The former query path: the batch call for one text, then the same model run."""
    (encoding,) = embedder.tokenizer.encode_batch([text])
    with embedder.in_flight() as session:
        return [float(v) for v in embedder._run(session, [encoding.ids])[0]]


def _window(embed: Callable[[str], list[float]]) -> tuple[list[float], list[float], float]:
    """One window: each embedding's time (s), each piece of the main thread's work (s), and
    the CPU of every thread but the main one (s)."""
    stop = threading.Event()
    embedded: list[float] = []

    def embedding() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            embed(QUESTION)
            embedded.append(time.perf_counter() - started)
            stop.wait(max(PACE_MS / 1000 - embedded[-1], 0))

    worker = threading.Thread(target=embedding)
    cpu, main_cpu = time.process_time(), time.thread_time()
    until = time.perf_counter() + WINDOW_S
    worker.start()
    took: list[float] = []
    while time.perf_counter() < until:
        started = time.perf_counter()
        json.loads(json.dumps(PAYLOAD))
        took.append(time.perf_counter() - started)
    main_cpu = time.thread_time() - main_cpu
    stop.set()
    worker.join()
    return embedded, took, time.process_time() - cpu - main_cpu


def run() -> list[Table]:
    table = Table(
        "Query tokens on the calling thread vs the tokenizer's pool, beside a busy loop thread",
        ["side", "embeddings", "embedding p50 / p95 ms", "loop work p50 / p95 µs",
         "other threads' CPU ms / embedding", "threads"],
    )  # fmt: skip
    with onnx_model() as folder:
        embedder = OnnxEmbedder(folder, precision="int8")
        embedder.use_threads(1)
        sides: dict[str, Callable[[str], list[float]]] = {
            "encode_batch (before)": lambda text: _batch_call(embedder, text),
            "encode (ragship)": embedder.embed_one,
        }
        for embed in sides.values():
            embed(QUESTION)  # warm-up; the batch side makes the pool once
        results: dict[str, tuple[list[float], list[float], float]] = {
            label: ([], [], 0.0) for label in sides
        }
        threads: dict[str, int] = {}
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)  # as the app serves (GIL_SWITCH_INTERVAL_MS)
        try:
            for _ in range(WINDOWS):
                for label, embed in sides.items():
                    embedded, took, cpu = _window(embed)
                    total = results[label]
                    results[label] = (total[0] + embedded, total[1] + took, total[2] + cpu)
                    threads[label] = len(os.listdir("/proc/self/task"))
        finally:
            sys.setswitchinterval(interval)
    for label, (embedded, took, cpu) in results.items():
        each, work = latency(embedded), latency(took)
        table.add(label, len(embedded), f"{each.p50 * 1000:.2f} / {each.p95 * 1000:.2f}",
                  f"{work.p50 * 1e6:.1f} / {work.p95 * 1e6:.1f}",
                  f"{cpu / max(len(embedded), 1) * 1000:.2f}", threads[label])  # fmt: skip
    table.notes.append(
        f"{WINDOWS} windows of {WINDOW_S:.0f} s per side, alternating; one query started every "
        f"{PACE_MS:.0f} ms (or when the last one ends, if later)"
    )
    return [table]
