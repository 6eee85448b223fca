"""An app over a small corpus of its own, in a fresh database, so a test can ingest into it
or count its rows without the session's shared database in the way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from app.db import make_sync_engine
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from app.rag.embedder import Embedder
from ingest.pipeline import ingest_paths
from tests.conftest import LocalModel, make_settings


@contextmanager
def corpus_app(
    url: str, embedder: Embedder, local_model: LocalModel, pages: list[Path], **settings: object
) -> Iterator[tuple[BackgroundServer, Engine]]:
    """(the running app, an engine on its database): `pages` ingested at 300 tokens per chunk,
    the local model upstream, a rate limit no test reaches, then `settings` on top."""
    engine = make_sync_engine(url)
    ingest_paths(pages, engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40)
    server = BackgroundServer(
        create_app(
            make_settings(
                database_url=url,
                llm_base_url=local_model.base_url,
                rate_limit_requests=10_000,
                **settings,
            ),
            embedder=embedder,
        )
    ).start()
    try:
        yield server, engine
    finally:
        server.stop()
        engine.dispose()
