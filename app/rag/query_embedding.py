"""The question's embedding, begun early: on its thread while the cap chain's rate limit
waits for the store, instead of after it.

The embedding costs no money and no I/O, only CPU on a thread (the event loop is free
meanwhile), so the cap chain (`app/caps/chain.py` `admit`) begins it as soon as the input
bounds pass, and `prepare_chat` awaits it after the rate limit has admitted the request.
A request the rate limit refuses drops its embedding (issue 17).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools

from app.rag.embedder import TextEmbedder


class QueryEmbedding:
    """One question's embedding (a unit vector, 384 floats for MiniLM), computed once on
    the event loop's default executor, as `asyncio.to_thread` runs it."""

    def __init__(self, embedder: TextEmbedder, question: str) -> None:
        self._embedder = embedder
        self._question = question
        self._future: asyncio.Future[list[float]] | None = None

    def begin(self) -> None:
        """Hand the embedding to a thread now (idempotent). Must run on the event loop."""
        if self._future is not None:
            return
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        call = functools.partial(context.run, self._embedder.embed_one, self._question)
        self._future = loop.run_in_executor(None, call)
        self._future.add_done_callback(_retrieved)

    async def vector(self) -> list[float]:
        """The embedding, begun now if `begin` was not called; raises what the embedder
        raised."""
        self.begin()
        assert self._future is not None
        return await self._future


def _retrieved(future: asyncio.Future[list[float]]) -> None:
    """Mark a dropped embedding's error as seen (a refused request never awaits it): no
    "exception was never retrieved" in the log. An awaited one raises all the same."""
    if not future.cancelled():
        future.exception()
