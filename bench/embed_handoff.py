"""A query embedding handed to its thread while the event loop keeps computing: with the
GIL given up once after the hand-off (`QueryEmbeddings`, the app's) against without.

The chat route starts the question's embedding, then goes on with the sign-in (parsing,
building the lookup, psycopg's send) before it first waits for I/O. The executor thread
that takes the embedding needs the GIL to begin. Each round starts one embedding (the
deploy image's embedder: onnxruntime, int8, one thread) and then keeps the loop's thread
busy in Python for `BUSY_MS`, as that work does, then awaits the vector. Without the
hand-off the thread begins when the loop gives the GIL up: at the switch interval
(GIL_SWITCH_INTERVAL_MS, the app's 1 ms). Sides alternate call by call, the order swapped
every call.

Columns: the time from the start to the embedding's thread beginning, and to the vector
back on the loop (p50 / p95, ms).
"""

from __future__ import annotations

import asyncio
import sys
import time

from app.rag.embedder import TextEmbedder, load_embedder
from app.rag.query_embedding import QueryEmbeddings
from bench.fixtures import bench_settings, onnx_model
from bench.table import Table, latency

NAME = "embed_handoff"
CALLS = 200  # per side
BUSY_MS = 2.0  # the loop's own work after the start, before it waits
SWITCH_INTERVAL_S = 0.001  # GIL_SWITCH_INTERVAL_MS's default
QUESTION = "How do I ingest PDF files?"
SIDES = {"GIL given up after the hand-off (ragship)": True, "no hand-off": False}


class _Timed:
    """An embedder that notes when its thread began each call."""

    def __init__(self, embedder: TextEmbedder) -> None:
        self.embedder = embedder
        self.began = 0.0

    def embed_one(self, text: str) -> list[float]:
        self.began = time.perf_counter()
        return self.embedder.embed_one(text)


async def _call(embeddings: QueryEmbeddings, timed: _Timed) -> tuple[float, float]:
    started = time.perf_counter()
    pending = embeddings.start(timed, QUESTION)  # type: ignore[arg-type]
    until = started + BUSY_MS / 1000
    while time.perf_counter() < until:  # the loop's thread computing, as the route does
        pass
    await pending.vector()
    return timed.began - started, time.perf_counter() - started


async def _rounds(embedder: TextEmbedder) -> dict[str, tuple[list[float], list[float]]]:
    sides = {label: QueryEmbeddings(handoff=handoff) for label, handoff in SIDES.items()}
    timed = _Timed(embedder)
    out: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label in SIDES}
    for label in SIDES:  # warm-up: the executor's thread made, the model's first call
        await _call(sides[label], timed)
    for n in range(CALLS):
        order = list(SIDES) if n % 2 == 0 else list(reversed(SIDES))
        for label in order:
            began, back = await _call(sides[label], timed)
            out[label][0].append(began)
            out[label][1].append(back)
    return out


def run() -> list[Table]:
    table = Table(
        f"A query embedding started, then {BUSY_MS:g} ms of the loop's own work "
        f"(onnxruntime int8, switch interval {SWITCH_INTERVAL_S * 1000:g} ms)",
        ["side", "n", "thread began p50/p95 ms", "vector back p50/p95 ms"],
    )
    before = sys.getswitchinterval()
    with onnx_model() as onnx_dir:
        settings = bench_settings(
            embedding_backend="onnx",
            embedding_onnx_dir=onnx_dir,
            embedding_onnx_precision="int8",
        )
        embedder = load_embedder(settings)
        embedder.use_threads(1)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            results = asyncio.run(_rounds(embedder))
        finally:
            sys.setswitchinterval(before)
    for label, (began, back) in results.items():
        b, v = latency(began), latency(back)
        table.rows.append(
            [label, str(b.n), f"{b.p50 * 1000:.2f}/{b.p95 * 1000:.2f}",
             f"{v.p50 * 1000:.2f}/{v.p95 * 1000:.2f}"]
        )  # fmt: skip
    table.notes.append(
        "the loop's work runs before it first awaits, as the route's sign-in does; the "
        "embedding's own time is in 'vector back' on both sides"
    )
    return [table]
