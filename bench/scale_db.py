"""`bench scale`'s databases: synthetic chunks loaded with COPY, the HNSW index built and timed,
kept between runs under /tmp so that a re-run skips the load and the build.

A kept database lives in a folder named by a digest of everything it is made of: the
vectors' bytes, the texts, the migrations' sources and this module's DDL. Change the
generator, its seed or the schema and the digest changes, so a stale database is never
reused. A folder is complete only once its `built.json` (the build's seconds, as measured
when it was built) is written; a folder without it (a run killed mid-load) is deleted and
built again. A lock file serialises runs that want the same folder.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pgserver
from pgvector.psycopg import register_vector
from sqlalchemy import create_engine, text

from app.migrate import upgrade_to_head
from bench.fixtures import ROOT
from ingest.keyword_statistics import refresh_keyword_statistics

KEPT = Path(tempfile.gettempdir()) / "ragship-bench-scale"
KEEP_UP_TO = 200_000  # chunks; a 1M database (several GB) is built afresh and deleted
_NAME = "bench_scale"
# The app's own index, as its migrations define it (read back, dropped, rebuilt after COPY).
_INDEXDEF = text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_chunks_embedding_hnsw'")


# PostgreSQL's own default (pgserver's initdb writes it), and the size docs/retrieval.md
# gives for a corpus ("Memory"): about 4 KB a chunk at 384 dimensions (the HNSW index about
# 2 KB, the chunks table about 2 KB: 195 MB and 196 MB at 100k), rounded up to a power of two.
DEFAULT_SHARED_BUFFERS_MB = 128
BYTES_PER_CHUNK = 4096


def sized_buffers_mb(chunks: int) -> int:
    """`shared_buffers` in MB that holds `chunks` chunks' HNSW index and rows, as
    docs/retrieval.md sizes it: at least PostgreSQL's default (128 MB)."""
    need = chunks * BYTES_PER_CHUNK / 2**20
    size = DEFAULT_SHARED_BUFFERS_MB
    while size < need:
        size *= 2
    return size


@dataclass(frozen=True)
class Built:
    """A loaded database: its data folder, the HNSW build's seconds and whether it was
    built by an earlier run (`reused`: the seconds are that run's). `serving` starts it."""

    pgdata: Path
    build_s: float
    reused: bool

    @contextmanager
    def serving(self, shared_buffers_mb: int) -> Iterator[str]:
        """The database's SQLAlchemy URL, its server started with `shared_buffers_mb` MB of
        shared buffers (ALTER SYSTEM, which takes effect at the next start), so each
        setting's queries start with empty PostgreSQL buffers; stopped afterwards."""
        with _server(self.pgdata) as server:
            server.psql(f"ALTER SYSTEM SET shared_buffers = '{int(shared_buffers_mb)}MB';")
        with _server(self.pgdata) as server:
            yield _url(server)


@contextmanager
def _server(pgdata: Path) -> Iterator[pgserver.PostgresServer]:
    """pgserver's server for `pgdata`, started (initialised first if new), stopped after."""
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()


def _url(server: pgserver.PostgresServer) -> str:
    return server.get_uri(_NAME).replace("postgresql://", "postgresql+psycopg://", 1)


def _load(url: str, vectors: np.ndarray, texts: list[str]) -> float:
    """COPY the chunks in without the HNSW index, then build it; returns the build seconds."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            hnsw = str(conn.execute(_INDEXDEF).scalar_one())
            conn.execute(text("DROP INDEX ix_chunks_embedding_hnsw"))
            doc = conn.execute(
                text(
                    "INSERT INTO documents (source, title, content_hash, embedding_model, "
                    "chunk_count, ingested_at) "
                    "VALUES ('synthetic', 'Synthetic', 'x', 'synthetic', :n, now()) RETURNING id"
                ),
                {"n": len(texts)},
            ).scalar_one()
            raw = conn.connection.driver_connection
            assert raw is not None
            register_vector(raw)
            with raw.cursor().copy(
                "COPY chunks (document_id, ordinal, heading_path, anchor, text, token_count, "
                "embedding) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int4", "text", "text", "text", "int4", "vector"])
                for n, (vector, body) in enumerate(zip(vectors, texts, strict=True)):
                    copy.write_row((doc, n, f"section {n}", f"s{n}", body, 40, vector))
        with engine.begin() as conn:
            # The HNSW graph must fit in maintenance_work_mem, or the build slows down a lot
            # (pgvector): about 0.8 GB at 1M chunks of 384 dimensions, m=16.
            memory = "512MB" if len(texts) <= KEEP_UP_TO else "4GB"
            conn.execute(text(f"SET maintenance_work_mem = '{memory}'"))
            started = time.perf_counter()
            conn.execute(text(hnsw))
            built = time.perf_counter() - started
        refresh_keyword_statistics(engine)  # as an ingest ends: ANALYZE, common lexemes
        return built
    finally:
        engine.dispose()


def digest(vectors: np.ndarray, texts: list[str]) -> str:
    """16 hex digits naming a database made of these chunks under the current migrations."""
    h = hashlib.sha256(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    h.update("\n".join(texts).encode())
    for source in sorted((ROOT / "alembic" / "versions").glob("*.py")):
        h.update(source.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


@contextmanager
def scale_database(vectors: np.ndarray, texts: list[str]) -> Iterator[Built]:
    """A database holding the chunks with their HNSW index: kept between runs up to
    KEEP_UP_TO chunks (under KEPT), otherwise temporary. Not running: `Built.serving`."""
    if len(texts) > KEEP_UP_TO:
        with tempfile.TemporaryDirectory(prefix="ragship-bench-scale-") as tmp:
            pgdata = Path(tmp) / "pg"
            yield Built(pgdata, _create(pgdata, vectors, texts), reused=False)
        return
    folder = KEPT / f"{len(texts)}-{digest(vectors, texts)}"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder.parent / f"{folder.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = folder / "built.json"
        reused = marker.exists()
        if not reused:
            shutil.rmtree(folder)
            folder.mkdir()
            marker.write_text(json.dumps({"build_s": _create(folder / "pg", vectors, texts)}))
        yield Built(folder / "pg", float(json.loads(marker.read_text())["build_s"]), reused)


def _create(pgdata: Path, vectors: np.ndarray, texts: list[str]) -> float:
    """A new server in `pgdata` with the migrated database and the chunks; returns the
    HNSW build's seconds."""
    with _server(pgdata) as server:
        server.psql(f"CREATE DATABASE {_NAME};")
        url = _url(server)
        upgrade_to_head(url)
        return _load(url, vectors, texts)
