"""A query's tokens made by the batch call (`encode_batch`, ragship's) against
`Tokenizer.encode` on the calling thread, while the event loop's thread keeps computing.

The batch call gives the GIL up and hands even one text to the tokenizer's thread pool
(rayon); `encode` tokenises on the calling thread and keeps the GIL. Here a thread embeds
one query every `PACE_MS` (the deploy image's embedder: onnxruntime, int8, one thread, as
the server runs it), while the main thread runs a fixed piece of Python work (a JSON round
trip, as a request's parsing is) again and again, as the event loop does beside a query
embedding. Sides alternate window by window, `WINDOWS` each.

Columns: embeddings done and each one's time; the main thread's piece of work p50 / p95
(µs: what the loop loses to the other threads); the CPU of every thread but the main one
per embedding (ms: the embedding's own and the pool's). The app's GIL switch interval
(1 ms) throughout. A second table times `encode` alone, which keeps the GIL while it runs:
for the question, and for the longest question the input bounds allow.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable

from app.rag.onnx_embedder import OnnxEmbedder
from app.settings import Settings
from bench.fixtures import onnx_model
from bench.sse_client import QUESTION
from bench.table import Table, latency

NAME = "tokenize_pool"
ENCODES = 300
WINDOW_S = 2.0
WINDOWS = 3  # per side
PACE_MS = 5.0  # one query embedding started this often
SWITCH_INTERVAL_S = 0.001  # GIL_SWITCH_INTERVAL_MS's default
PAYLOAD = {"message": QUESTION * 8, "conversation_id": None, "n": list(range(50))}


def _encode_call(embedder: OnnxEmbedder, text: str) -> list[float]:
    """`OnnxEmbedder.embed` with `Tokenizer.encode` for one text (its private model run, so
    a change there reaches this side too)."""
    encoding = embedder.tokenizer.encode(text)
    with embedder.in_flight() as session:
        vectors: list[list[float]] = embedder._run(session, [encoding.ids]).tolist()
        return vectors[0]


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
         "other threads' CPU ms / embedding"],
    )  # fmt: skip
    with onnx_model() as folder:
        embedder = OnnxEmbedder(folder, precision="int8")
        embedder.use_threads(1)
        sides: dict[str, Callable[[str], list[float]]] = {
            "encode_batch (ragship)": embedder.embed_one,
            "encode": lambda text: _encode_call(embedder, text),
        }
        for embed in sides.values():
            embed(QUESTION)  # warm-up; the batch side makes the pool once
        results: dict[str, tuple[list[float], list[float], float]] = {
            label: ([], [], 0.0) for label in sides
        }
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)  # as the app serves (GIL_SWITCH_INTERVAL_MS)
        try:
            for _ in range(WINDOWS):
                for label, embed in sides.items():
                    embedded, took, cpu = _window(embed)
                    total = results[label]
                    results[label] = (total[0] + embedded, total[1] + took, total[2] + cpu)
        finally:
            sys.setswitchinterval(interval)
        held = _held(embedder)
    for label, (embedded, took, cpu) in results.items():
        each, work = latency(embedded), latency(took)
        table.add(label, len(embedded), f"{each.p50 * 1000:.2f} / {each.p95 * 1000:.2f}",
                  f"{work.p50 * 1e6:.1f} / {work.p95 * 1e6:.1f}",
                  f"{cpu / max(len(embedded), 1) * 1000:.2f}")  # fmt: skip
    table.notes.append(
        f"{WINDOWS} windows of {WINDOW_S:.0f} s per side, alternating; one query started every "
        f"{PACE_MS:.0f} ms (or when the last one ends, if later)"
    )
    return [table, held]


def _held(embedder: OnnxEmbedder) -> Table:
    """How long `encode` keeps the GIL: its time for the question and for the longest one
    the input bounds allow (MAX_MESSAGE_CHARS), which the loop may wait through."""
    table = Table("Tokenizer.encode alone (it keeps the GIL)", ["question", "n", "p50 µs",
                                                                 "p95 µs"])  # fmt: skip
    word = QUESTION + " "
    longest = word * (Settings.model_fields["max_message_chars"].default // len(word))
    for label, text in {"the gateway bench's": QUESTION, f"{len(longest)} chars": longest}.items():
        took = []
        for _ in range(ENCODES):
            started = time.perf_counter()
            embedder.tokenizer.encode(text)
            took.append(time.perf_counter() - started)
        each = latency(took)
        table.add(label, each.n, f"{each.p50 * 1e6:.1f}", f"{each.p95 * 1e6:.1f}")
    return table
