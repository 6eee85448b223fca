"""The corpus version (the response cache's key, app/cache/responses.py) follows every
change to the documents, as the triggers of migration 0023 keep it: checked against the
version computed here, in Python, from the documents as they are (the XOR of each one's
md5 of source:content_hash:embedding_model), after single writes, an ingest, a TRUNCATE,
writers in parallel, and the migration itself over documents already there."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pgserver
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.cache.responses import corpus_version
from app.db import make_async_engine, make_sync_engine, session_scope
from app.migrate import upgrade_to, upgrade_to_head
from app.rag.embedder import Embedder
from ingest.pipeline import ingest_paths

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_INSERT = text(
    "INSERT INTO documents (source, title, content_hash, embedding_model, chunk_count, "
    "ingested_at) VALUES (:source, 't', :hash, :model, 0, now())"
)


def expected(conn: Connection) -> str:
    """The version from scratch: XOR of md5(source:content_hash:embedding_model)."""
    digest = 0
    for source, content_hash, model in conn.execute(
        text("SELECT source, content_hash, embedding_model FROM documents")
    ):
        line = f"{source}:{content_hash}:{model}".encode()
        digest ^= int.from_bytes(hashlib.md5(line).digest(), "big")
    return f"{digest:032x}"


def version(engine: Engine) -> str:
    """`corpus_version` in an async session: the same expression over `corpus_digest` that the
    chat path's cache lookup reads the version with (`_VERSION`, app/cache/responses.py)."""

    async def read() -> str:
        async_engine = make_async_engine(engine.url.render_as_string(hide_password=False))
        try:
            async with session_scope(async_sessionmaker(async_engine)) as session:
                return await corpus_version(session)
        finally:
            await async_engine.dispose()

    return asyncio.run(read())


def current(engine: Engine) -> tuple[str, str]:
    with engine.connect() as conn:
        return version(engine), expected(conn)


@pytest.fixture
def engine(new_database: Callable[[], str]) -> Iterator[Engine]:
    engine = make_sync_engine(new_database())
    yield engine
    engine.dispose()


def test_the_version_follows_each_insert_update_delete_and_truncate(engine: Engine) -> None:
    empty, _ = current(engine)
    assert empty == "0" * 32
    seen = {empty}
    steps = [
        ("INSERT INTO documents (source, title, content_hash, embedding_model, chunk_count, "
         "ingested_at) VALUES ('a.md', 't', 'h1', :m, 0, now()), ('b.md', 't', 'h2', :m, 0, now())"),
        "UPDATE documents SET content_hash = 'h3' WHERE source = 'a.md'",
        "UPDATE documents SET embedding_model = 'other' WHERE source = 'b.md'",
        "UPDATE documents SET source = 'c.md' WHERE source = 'b.md'",
        "DELETE FROM documents WHERE source = 'a.md'",
    ]  # fmt: skip
    for step in steps:
        with engine.begin() as conn:
            conn.execute(text(step), {"m": MODEL})
        now, want = current(engine)
        assert now == want, step
        assert now not in seen, f"{step} did not change the version"
        seen.add(now)
    with engine.begin() as conn:  # a title alone is not part of the version
        conn.execute(text("UPDATE documents SET title = 'new' WHERE source = 'c.md'"))
    assert current(engine) == (now, now)
    with engine.begin() as conn:  # gone and back with the same content: the same version
        conn.execute(text("DELETE FROM documents WHERE source = 'c.md'"))
        conn.execute(_INSERT, {"source": "c.md", "hash": "h2", "model": "other"})
    assert current(engine) == (now, now)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE documents CASCADE"))
    assert current(engine) == (empty, empty)


def test_an_ingest_moves_the_version_only_when_the_corpus_changes(
    engine: Engine, embedder: Embedder, tmp_path: Path
) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "one.md").write_text("# One\n\nThe first page.\n", encoding="utf-8")
    (folder / "two.md").write_text("# Two\n\nThe second page.\n", encoding="utf-8")

    def ingest() -> tuple[str, str]:
        report = ingest_paths(
            [folder], engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40,
            prune=True,
        )  # fmt: skip
        assert not report.errors
        return current(engine)

    first, want = ingest()
    assert first == want != "0" * 32
    assert ingest() == (first, first)  # nothing changed
    (folder / "two.md").write_text("# Two\n\nThe second page, edited.\n", encoding="utf-8")
    edited, want = ingest()
    assert edited == want != first
    (folder / "one.md").unlink()
    pruned, want = ingest()
    assert pruned == want not in (first, edited)


def test_writers_in_parallel_leave_the_version_exact(engine: Engine) -> None:
    writers, rounds = 8, 25
    start = threading.Barrier(writers)

    def write(n: int) -> None:
        start.wait()
        for r in range(rounds):
            with engine.begin() as conn:  # each round its own transaction
                conn.execute(
                    _INSERT, {"source": f"w{n}-{r}.md", "hash": f"{n}.{r}", "model": MODEL}
                )
                if r % 3 == 1:
                    conn.execute(
                        text("UPDATE documents SET content_hash = :h WHERE source = :s"),
                        {"h": uuid.uuid4().hex, "s": f"w{n}-{r - 1}.md"},
                    )
                if r % 5 == 4:
                    conn.execute(
                        text("DELETE FROM documents WHERE source = :s"), {"s": f"w{n}-{r - 2}.md"}
                    )

    with ThreadPoolExecutor(writers) as pool:
        for done in [pool.submit(write, n) for n in range(writers)]:
            done.result()
    now, want = current(engine)
    assert now == want
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM documents")).scalar() == writers * (
            rounds - rounds // 5
        )
        shards = conn.execute(text("SELECT count(*) FROM corpus_digest WHERE hi <> 0")).scalar()
    assert shards is not None and shards > 1  # the writers' backends moved several rows


def test_the_migration_counts_the_documents_already_there(
    pg_server: pgserver.PostgresServer,
) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_server.psql(f"CREATE DATABASE {name};")
    url = pg_server.get_uri(name).replace("postgresql://", "postgresql+psycopg://", 1)
    upgrade_to(url, "0022")
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            for n in range(30):
                conn.execute(_INSERT, {"source": f"d{n}.md", "hash": f"h{n}", "model": MODEL})
        upgrade_to_head(url)
        now, want = current(engine)
        assert now == want != "0" * 32
    finally:
        engine.dispose()
        pg_server.psql(f"DROP DATABASE {name} WITH (FORCE);")
