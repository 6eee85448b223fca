"""Ingest against a real PostgreSQL: formats, incremental re-runs, prune, errors, atomicity."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app.db import make_sync_engine
from app.rag.embedder import Embedder
from ingest.__main__ import main as ingest_main
from ingest.pipeline import IngestReport, ingest_paths, source_key
from tests.conftest import scalar
from tests.pdf import make_pdf

MARKDOWN = """# Deploying

Intro to deploying ragship.

## Fly.io

Run fly deploy from the repository root.

### Secrets

Set the session secret with fly secrets set.
"""
HTML = """<html><head><title>Ops guide</title><style>p{}</style></head><body>
<h1>Operations</h1><p>Watch the status page.</p><h2>Backups</h2><p>Back up PostgreSQL nightly.</p>
<script>alert('never indexed')</script></body></html>"""


@pytest.fixture
def engine(new_database: Callable[[], str]) -> Iterator[Engine]:
    engine = make_sync_engine(new_database())
    yield engine
    engine.dispose()


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "deploy.md").write_text(MARKDOWN)
    (root / "notes.txt").write_text(
        "Plain notes about rate limits and budgets.\n\nSecond paragraph."
    )
    (root / "ops.html").write_text(HTML)
    (root / "manual.pdf").write_bytes(
        make_pdf(["Page one talks about pgvector.", "Page two covers HNSW."])
    )
    return root


def run(engine: Engine, embedder: Embedder, *paths: Path, prune: bool = False) -> IngestReport:
    return ingest_paths(
        list(paths),
        engine=engine,
        embedder=embedder,
        chunk_tokens=120,
        chunk_overlap=20,
        prune=prune,
    )


def chunks_of(engine: Engine, source: str, *, others: bool = False) -> list[tuple[object, ...]]:
    """(id, text) of the chunks of one document, or of every other document."""
    sql = (
        "SELECT c.id, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
        "WHERE (d.source = :source) <> :others ORDER BY c.id"
    )
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), {"source": source, "others": others})]


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_all_four_formats_become_cited_chunks(
    engine: Engine, embedder: Embedder, folder: Path
) -> None:
    report = run(engine, embedder, folder)
    assert (report.files, report.ingested, report.errors) == (4, 4, [])
    headings = {r[0] for r in rows(engine, "SELECT heading_path FROM chunks")}
    assert "Deploying › Fly.io › Secrets" in headings
    assert "Operations › Backups" in headings
    assert {"Page 1", "Page 2"} <= headings
    texts = " ".join(str(r[0]) for r in rows(engine, "SELECT text FROM chunks"))
    assert "fly secrets set" in texts and "pgvector" in texts and "HNSW" in texts
    assert "never indexed" not in texts
    titles = {r[0] for r in rows(engine, "SELECT title FROM documents")}
    assert {"Deploying", "Ops guide", "notes", "manual"} <= titles
    dims = scalar(engine, "SELECT DISTINCT vector_dims(embedding) FROM chunks")
    assert dims == 384
    assert scalar(engine, "SELECT count(*) FROM chunks WHERE token_count > 120") == 0


def test_second_run_does_no_embedding_work(
    engine: Engine, embedder: Embedder, folder: Path
) -> None:
    first = run(engine, embedder, folder)
    before = rows(engine, "SELECT id, document_id FROM chunks ORDER BY id")
    second = run(engine, embedder, folder)
    assert first.chunks > 0
    assert (second.ingested, second.skipped, second.chunks) == (0, 4, 0)
    assert rows(engine, "SELECT id, document_id FROM chunks ORDER BY id") == before


def test_changed_file_is_reembedded_and_others_untouched(
    engine: Engine, embedder: Embedder, folder: Path
) -> None:
    run(engine, embedder, folder)
    untouched = chunks_of(engine, "corpus/notes.txt", others=True)
    (folder / "notes.txt").write_text("Completely new notes about the kill switch.")
    report = run(engine, embedder, folder)
    assert (report.ingested, report.skipped) == (1, 3)
    assert "kill switch" in str(chunks_of(engine, "corpus/notes.txt"))
    assert chunks_of(engine, "corpus/notes.txt", others=True) == untouched


def test_prune_removes_documents_whose_files_are_gone(
    engine: Engine, embedder: Embedder, folder: Path
) -> None:
    run(engine, embedder, folder)
    (folder / "ops.html").unlink()
    kept = run(engine, embedder, folder)
    assert kept.pruned == 0 and scalar(engine, "SELECT count(*) FROM documents") == 4
    pruned = run(engine, embedder, folder, prune=True)
    assert pruned.pruned == 1
    assert scalar(engine, "SELECT count(*) FROM documents WHERE source = 'corpus/ops.html'") == 0
    orphans = "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)"
    assert scalar(engine, orphans) == 0


def test_bad_files_are_reported_and_the_rest_ingested(
    engine: Engine, embedder: Embedder, folder: Path
) -> None:
    (folder / "empty.md").write_text("   \n")
    (folder / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    report = run(engine, embedder, folder, folder / "missing.md")
    errors = dict(report.errors)
    assert set(errors) == {
        "corpus/empty.md",
        "corpus/latin1.txt",
        "corpus/broken.pdf",
        "corpus/missing.md",
    }
    assert "empty" in errors["corpus/empty.md"]
    assert "UTF-8" in errors["corpus/latin1.txt"]
    assert "PDF" in errors["corpus/broken.pdf"]
    assert "no such file" in errors["corpus/missing.md"]
    assert report.ingested == 4


def test_failed_replacement_leaves_the_old_document_whole(
    engine: Engine, embedder: Embedder, folder: Path
) -> None:
    """The database refusing one file rolls back that file's replacement only: it is
    reported, its old version stays whole, and the files after it are still written."""
    run(engine, embedder, folder)
    before = chunks_of(engine, "corpus/deploy.md")
    with engine.begin() as conn:  # the database refuses one chunk, as a dying connection would
        conn.execute(
            text("""
            CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
            BEGIN
                IF NEW.text LIKE '%POISON%' THEN RAISE EXCEPTION 'refused'; END IF;
                RETURN NEW;
            END
            $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON chunks
                FOR EACH ROW EXECUTE FUNCTION refuse_poison();
        """)
        )
    (folder / "deploy.md").write_text(
        MARKDOWN + "\n## Later section\n\nfirst fine chunk\n\n## Bad\n\nPOISON here\n"
    )
    (folder / "notes.txt").write_text("Notes rewritten after deploy.md, about the kill switch.")
    report = run(engine, embedder, folder)
    assert report.errors == [("corpus/deploy.md", "database error: refused")]
    assert (report.ingested, report.skipped) == (1, 2)
    assert chunks_of(engine, "corpus/deploy.md") == before
    assert "kill switch" in str(chunks_of(engine, "corpus/notes.txt"))


def test_cli_prints_summary_and_fails_on_errors(
    folder: Path,
    new_database: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", new_database())
    get_settings.cache_clear()
    try:
        assert ingest_main([str(folder)]) == 0
        out = capsys.readouterr().out
        assert "4 files: 4 ingested" in out and "chunks/s" in out
        (folder / "empty.txt").write_text("")
        assert ingest_main([str(folder)]) == 1
        captured = capsys.readouterr()
        assert "error: corpus/empty.txt: no text to ingest" in captured.err
        assert "4 unchanged" in captured.out
    finally:
        get_settings.cache_clear()


def test_source_key_is_relative_to_the_working_directory(folder: Path) -> None:
    assert source_key(folder / "deploy.md") == "corpus/deploy.md"
