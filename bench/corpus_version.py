"""The corpus version read on every first-turn question (the response cache's key): kept up
to date by triggers (migration 0023) against recomputed from every document, same run.

`app/cache/responses.corpus_version` reads `corpus_digest`'s 16 rows, whatever the corpus's
size. The baseline is the statement it replaced: an md5 over every document's source,
content hash and embedding model, aggregated in source order. One temporary database,
filled to each size in turn with synthetic documents (sources as long as a nested docs
folder's); each statement read ROUNDS times at each size, alternating, the first of each
not counted.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, TextClause, text

from app.cache.responses import _CORPUS_VERSION
from app.db import make_sync_engine
from bench.fixtures import temp_database
from bench.table import Table, latency, ratio

NAME = "corpus_version"
SIZES = (20, 1_000, 10_000, 50_000)
ROUNDS = 40

_RECOMPUTED = text(
    "SELECT md5(coalesce(string_agg(source || ':' || content_hash || ':' || embedding_model, "
    "',' ORDER BY source), '')) FROM documents"
)
_FILL = text(
    "INSERT INTO documents (source, title, content_hash, embedding_model, chunk_count, "
    "ingested_at) "
    "SELECT 'docs/guides/deploy/page-' || g || '.md', 'Page ' || g, "
    "md5(g::text) || md5(g::text), 'sentence-transformers/all-MiniLM-L6-v2', 20, now() "
    "FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g"
)


def _time(conn: Connection, statement: TextClause) -> float:
    started = time.perf_counter()
    conn.execute(statement).scalar_one()
    return time.perf_counter() - started


def run() -> list[Table]:
    table = Table(
        "Corpus version per first-turn question (response cache key), by number of documents",
        ["documents", "read", "n", "p50 ms", "p95 ms", "p50 vs baseline"],
    )
    with temp_database() as url:
        engine = make_sync_engine(url)
        try:
            with engine.connect() as conn:
                filled = 0
                for size in SIZES:
                    conn.execute(_FILL, {"first": filled + 1, "last": size})
                    conn.commit()
                    conn.execute(text("ANALYZE documents"))
                    conn.commit()
                    filled = size
                    assert conn.execute(_CORPUS_VERSION).scalar_one() != "0" * 32
                    took: dict[str, list[float]] = {"recomputed": [], "kept": []}
                    for n in range(ROUNDS + 1):
                        recomputed, kept = _time(conn, _RECOMPUTED), _time(conn, _CORPUS_VERSION)
                        if n:
                            took["recomputed"].append(recomputed)
                            took["kept"].append(kept)
                    base = latency(took["recomputed"])
                    kept_lat = latency(took["kept"])
                    for label, lat in (
                        ("md5 over every document (baseline)", base),
                        ("corpus_digest, kept by triggers", kept_lat),
                    ):
                        table.add(
                            f"{size:,}",
                            label,
                            lat.n,
                            f"{lat.p50 * 1000:.2f}",
                            f"{lat.p95 * 1000:.2f}",
                            ratio(lat.p50, base.p50),
                        )
        finally:
            engine.dispose()
    table.notes.append(
        "one connection, one statement at a time, no other load; each size's two reads alternate"
    )
    return [table]
