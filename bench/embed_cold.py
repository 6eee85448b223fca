"""A query embedding back to back against one after a pause, as one request at a time has.

At one chat at a time a worker embeds a question, then relays an answer paced by the
upstream for about a second, doing little. The next embedding is then slower than one
called again and again, as if cold: its weights (about 10 MB of layers at int8, 40 MB at
fp32) are read again. This times `embed_one` of the gateway bench's question
(onnxruntime, one intra-op thread, as the server runs it) as the fifth call in a row, and
after a pause of each length in `PAUSES`: asleep, or with the calling thread computing in
Python (a busy pause, which keeps the core awake and touches almost no memory: if it is as
slow as a sleep, the slowdown comes with time, not with this process's own work).

Columns per precision: the pause, the calls timed (n), then `embed_one` p50 / p95 (ms) and
its ratio to the call made fifth in a row (warm). Pauses alternate call by call, so that
every row sees the same load.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from app.rag.onnx_embedder import OnnxEmbedder, Precision
from bench.fixtures import onnx_model
from bench.sse_client import QUESTION
from bench.table import Table, latency, ratio

NAME = "embed_cold"
ROUNDS = 40  # calls per pause and precision
IN_A_ROW = 5
PRECISIONS: tuple[Precision, ...] = ("int8", "fp32")


def _busy(seconds: float) -> None:
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


WARM = "none: the 5th call in a row"
PAUSES: dict[str, Callable[[], None]] = {
    WARM: lambda: None,  # after IN_A_ROW - 1 calls (`run`)
    "5 ms asleep": lambda: time.sleep(0.005),
    "50 ms asleep": lambda: time.sleep(0.05),
    "50 ms computing": lambda: _busy(0.05),
    "500 ms asleep": lambda: time.sleep(0.5),
}


def run() -> list[Table]:
    table = Table(
        "A query embedding (embed_one, one thread) after a pause",
        ["precision", "pause before the call", "n", "p50 ms", "p95 ms", "p50 vs in a row"],
    )
    with onnx_model() as folder:
        for precision in PRECISIONS:
            embedder = OnnxEmbedder(folder, precision=precision)
            embedder.use_threads(1)
            for _ in range(20):
                embedder.embed_one(QUESTION)
            took: dict[str, list[float]] = {pause: [] for pause in PAUSES}
            for _ in range(ROUNDS):
                for pause, wait in PAUSES.items():
                    wait()
                    if pause == WARM:
                        for _ in range(IN_A_ROW - 1):
                            embedder.embed_one(QUESTION)
                    started = time.perf_counter()
                    embedder.embed_one(QUESTION)
                    took[pause].append(time.perf_counter() - started)
            base = latency(took[WARM]).p50
            for pause, samples in took.items():
                each = latency(samples)
                table.add(precision, pause, each.n, f"{each.p50 * 1000:.2f}",
                          f"{each.p95 * 1000:.2f}", ratio(each.p50, base))  # fmt: skip
    table.notes.append(f"{ROUNDS} calls per row, the rows' pauses in turn")
    return [table]
