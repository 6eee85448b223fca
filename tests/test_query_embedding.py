"""The question's embedding begun early (app/rag/query_embedding.py): the same vector the
embedder gives, computed once however often it is begun, and a dropped one (a request the
rate limit refused) that failed leaves no "never retrieved" error in the log."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import pytest

from app.rag.embedder import Embedder
from app.rag.query_embedding import QueryEmbedding

QUESTION = "How do I ingest PDF files?"


class CountingEmbedder:
    """The real embedder, counting the calls that reach it and the threads they ran on."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.threads: list[int] = []

    def embed_one(self, text: str) -> list[float]:
        self.threads.append(threading.get_ident())
        return self.inner.embed_one(text)


def test_the_early_embedding_is_the_embedders_vector_computed_once_off_the_loop(
    embedder: Embedder,
) -> None:
    counting = CountingEmbedder(embedder)

    async def go() -> tuple[list[float], list[float], int]:
        early = QueryEmbedding(counting, QUESTION)  # type: ignore[arg-type]
        early.begin()
        early.begin()
        first, again = await early.vector(), await early.vector()
        late = await QueryEmbedding(counting, QUESTION).vector()  # type: ignore[arg-type]
        assert late == first
        return first, again, threading.get_ident()

    first, again, loop_thread = asyncio.run(go())
    assert first == again == embedder.embed_one(QUESTION)
    assert len(counting.threads) == 2  # the early one once, the one begun by `vector` once
    assert loop_thread not in counting.threads


class FailingEmbedder:
    def embed_one(self, text: str) -> list[float]:
        raise ValueError("no model")


def test_a_dropped_embedding_that_failed_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        early = QueryEmbedding(FailingEmbedder(), QUESTION)  # type: ignore[arg-type]
        early.begin()
        await asyncio.sleep(0)  # the request is refused here; nobody awaits the embedding
        del early

        awaited = QueryEmbedding(FailingEmbedder(), QUESTION)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="no model"):
            await awaited.vector()  # an awaited one still raises the embedder's error

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(go())
        gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
