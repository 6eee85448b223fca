"""The question's embedding, started on a worker thread as soon as the question is read.

A chat request's question is embedded on a thread (`TextEmbedder.embed_one` is CPU work
that releases the GIL in onnxruntime and torch). The route starts it before the caller is
signed in (app/routes/chat.py, `early_embedding`) when no other query embedding is in
flight in this worker: the sign-in lookup and the rate limit wait on the network, so the
embedding runs on a free core meanwhile. It does not run free: it and the event loop take
turns with the GIL, and PostgreSQL needs a core too, so the embedding (3.5 ms alone, int8
ONNX, one thread) took about 5.7 ms from its start, and the sign-in lookup ran slower
beside it. Net, at one request at a time it took 1.0 ms off the time to first token at the
median (1.3 ms off the first event), against the same code embedding after the rate limit
(an interleaved A/B of 120 rounds, issue 17). When another one
is in flight the embedding starts after the chain's first layers, as before: a caller who
is then refused (a signed-out session, rate limited) never costs more than one embedding at a time
per worker, and a busy worker spends no CPU on work it may throw away. Only a credential
that signed in on this worker lately starts one early (app/auth/recent.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

from app.rag.embedder import TextEmbedder


@dataclass(frozen=True)
class StartedEmbedding:
    """One question's embedding on its way: `text`, and the future of its vector."""

    text: str
    future: asyncio.Future[list[float]]

    async def vector(self) -> list[float]:
        """The unit vector (384 floats for MiniLM); raises what `embed_one` raised.
        Cancelling the wait leaves the embedding to run and finish (shielded: cancelling
        the future itself would drop a job still queued, whose count would then never go
        back down)."""
        return await asyncio.shield(self.future)


class QueryEmbeddings:
    """Query embeddings in flight in this worker, counted from their start until their
    thread returns (a per-process CPU hint, nothing replicas must agree on)."""

    def __init__(self, *, handoff: bool = True) -> None:
        """``handoff``: give the GIL up once after handing an embedding to its thread
        (`start`); False only for `python -m bench embed_handoff`'s other side."""
        self._handoff = handoff
        self._lock = threading.Lock()  # taken on the event loop and on the worker threads
        self._in_flight = 0
        self.started = 0  # since start, both kinds (read by tests and benchmarks)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def start(self, embedder: TextEmbedder, text: str) -> StartedEmbedding:
        """Start embedding ``text`` on the event loop's default executor (as
        `asyncio.to_thread` does). Must run on the event loop. A result nobody awaits is
        dropped quietly, an error too (never "exception was never retrieved").

        The loop's thread then gives the GIL up once (`time.sleep(0)`): the woken executor
        thread needs it to begin, and the loop, busy with the request's next steps,
        otherwise kept it until it next waited for I/O or for the switch interval
        (GIL_SWITCH_INTERVAL_MS), so the embedding began about a millisecond late.
        Measured by `python -m bench embed_handoff`. In the app, on two cores, the handoff
        moves time rather than saving it: at one chat at a time the loop's thread ran
        again 0.2–0.4 ms after the `sleep(0)` in about a third of requests and 1.3–3.2 ms
        after in the rest, whose sign-in lookup started that much later and whose
        embedding finished sooner; the first event came at about the same time with and
        without (12.7 and 12.8 ms at the median, 54 requests each: timing marks, issue 17)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._in_flight += 1
            self.started += 1
        try:
            future = loop.run_in_executor(None, self._embed, embedder, text)
        except BaseException:
            self._done()
            raise
        if self._handoff:
            time.sleep(0)  # releases the GIL: the executor thread takes it and starts
        future.add_done_callback(_retrieved)
        return StartedEmbedding(text, future)

    def start_if_idle(self, embedder: TextEmbedder, text: str) -> StartedEmbedding | None:
        """`start`, when no other query embedding is in flight here; else None."""
        if self._in_flight:
            return None
        return self.start(embedder, text)

    def _embed(self, embedder: TextEmbedder, text: str) -> list[float]:
        try:
            return embedder.embed_one(text)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._in_flight -= 1


def _retrieved(future: asyncio.Future[list[float]]) -> None:
    if not future.cancelled():
        future.exception()  # marks the error as seen: the awaiting request raises it
