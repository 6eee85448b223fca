"""Retrieval's common lexemes (the keyword side leaves them out of its selective tier) are
the statistics of the corpus as the last ingest left it: ingest analyzes the chunks and
keeps their common lexemes in `common_lexemes` (migration 0024), which
`ragship_common_lexemes` reads for every question instead of the `pg_stats` view."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from app.db import make_sync_engine
from app.rag.embedder import Embedder
from ingest.keyword_statistics import refresh_keyword_statistics
from ingest.pipeline import ingest_paths
from ingest.prune import delete_corpus

# What pg_stats says now, as the function of migration 0020 read it per question.
_PG_STATS = text(
    "SELECT e.word, e.share FROM pg_stats, "
    "unnest(most_common_elems::text::text[], most_common_elem_freqs) AS e(word, share) "
    "WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'tsv' "
    "AND e.word IS NOT NULL"
)


def _kept(conn: Connection) -> dict[str, float]:
    return {w: s for w, s in conn.execute(text("SELECT word, share FROM common_lexemes"))}


def _write_corpus(folder: Path, pages: int) -> None:
    folder.mkdir(exist_ok=True)
    for n in range(pages):
        topic = ("replica", "budget", "stream")[n % 3]
        (folder / f"page-{n}.md").write_text(
            f"# Page {n}\n\nEvery page names the gateway. This one is about the {topic} "
            f"and the word unique{n}x.\n",
            encoding="utf-8",
        )


def _ingest(engine: Engine, embedder: Embedder, folder: Path) -> None:
    report = ingest_paths(
        [folder], engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40,
        prune=True,
    )  # fmt: skip
    assert not report.errors


def test_an_ingest_keeps_the_statistics_it_left_until_the_next_one(
    new_database: Callable[[], str], embedder: Embedder, tmp_path: Path
) -> None:
    engine = make_sync_engine(new_database())
    try:
        folder = tmp_path / "corpus"
        _write_corpus(folder, 30)
        _ingest(engine, embedder, folder)
        with engine.connect() as conn:
            kept = _kept(conn)
            assert kept == {w: s for w, s in conn.execute(_PG_STATS)}
            assert kept["gateway"] == 1.0 and kept["replica"] < 0.5
            common = conn.execute(text("SELECT ragship_common_lexemes(0.5)")).scalar_one()
            assert sorted(common) == sorted(w for w, s in kept.items() if s > 0.5)
        with engine.begin() as conn:  # 11 pages gone behind ingest's back (page-1, -10..-19)
            conn.execute(text("DELETE FROM documents WHERE source LIKE '%page-1%'"))
            conn.execute(text("ANALYZE chunks"))  # as autovacuum would, between ingests
        with engine.connect() as conn:
            assert {w: s for w, s in conn.execute(_PG_STATS)} != kept  # the statistics moved
            assert _kept(conn) == kept  # the questions' common lexemes did not
        _write_corpus(folder, 3)
        for extra in folder.glob("page-*.md"):
            if int(extra.stem.split("-")[1]) >= 3:
                extra.unlink()
        _ingest(engine, embedder, folder)  # prunes 27 pages: the statistics are new
        with engine.connect() as conn:
            assert _kept(conn) == {w: s for w, s in conn.execute(_PG_STATS)} != kept
    finally:
        engine.dispose()


def test_refreshes_in_parallel_do_not_collide(
    new_database: Callable[[], str], embedder: Embedder, tmp_path: Path
) -> None:
    """Ingest shards (Modal) end together: each refresh replaces the whole table, one at a
    time, and none fails on another's rows. (Ingest's ANALYZE, in the same transaction,
    already queues them on the chunks' lock; the function takes its own, so it is safe
    called alone too, and that is what the threads do here.)"""
    engine = make_sync_engine(new_database())
    try:
        folder = tmp_path / "corpus"
        _write_corpus(folder, 12)
        _ingest(engine, embedder, folder)
        assert refresh_keyword_statistics(engine) > 0
        start = threading.Barrier(4)

        def refresh() -> list[int]:
            start.wait()
            counts = []
            for _ in range(10):
                with engine.begin() as conn:
                    counts.append(
                        conn.execute(text("SELECT ragship_refresh_common_lexemes()")).scalar_one()
                    )
            return counts

        with ThreadPoolExecutor(4) as pool:
            counts = [f.result() for f in [pool.submit(refresh) for _ in range(4)]]
        with engine.connect() as conn:
            kept = _kept(conn)
            assert kept == {w: s for w, s in conn.execute(_PG_STATS)}
        assert {c for run in counts for c in run} == {len(kept)}
        assert delete_corpus(engine) == 12
    finally:
        engine.dispose()
