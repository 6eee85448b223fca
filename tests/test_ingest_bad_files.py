"""Bad files never stop ingest: control characters are cleaned out of every reader's text,
a file that still fails is reported on its own line, and the files after it are ingested,
by `python -m ingest` and by `python -m app` at start, both run as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app.db import make_sync_engine
from app.rag.embedder import Embedder
from app.textclean import is_clean
from ingest.pipeline import ingest_paths
from tests.app_process import app_process, free_port
from tests.conftest import LocalModel
from tests.pdf import make_pdf
from tests.test_retrieve import search

QUOKKA = b"Quokka facts.\x00 The quokka is small."
GOOD = "# Zebras\n\nEvery zebra has its own pattern of black and white stripes.\n"


@pytest.fixture
def engine_url(new_database: Callable[[], str]) -> str:
    return new_database()


@pytest.fixture
def engine(engine_url: str) -> Iterator[Engine]:
    engine = make_sync_engine(engine_url)
    yield engine
    engine.dispose()


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    """Bad files first, a good one last (files are ingested in name order)."""
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a-quokka.txt").write_bytes(QUOKKA)
    (root / "b-latin1.txt").write_bytes("Café au lait.".encode("latin-1"))
    (root / "c-surrogate.txt").write_bytes(b"Wombat facts.\xed\xa0\x80 Wombats dig burrows.")
    (root / "d-corrupt.pdf").write_bytes(b"%PDF-1.4 this is not a pdf")
    (root / "z-zebra.md").write_text(GOOD)
    return root


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def texts_by_source(engine: Engine) -> dict[str, str]:
    sql = (
        "SELECT d.source, string_agg(c.text, ' ' ORDER BY c.ordinal) FROM documents d "
        "JOIN chunks c ON c.document_id = d.id GROUP BY d.source"
    )
    return {str(source): str(joined) for source, joined in rows(engine, sql)}


def run_ingest_cli(
    cwd: Path, database_url: str, *args: str, settings: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, **(settings or {})}
    return subprocess.run(
        [sys.executable, "-m", "ingest", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_reports_bad_files_and_ingests_the_rest(
    bad_folder: Path,
    engine_url: str,
    engine: Engine,
    embedder: Embedder,
    onnx_env: dict[str, str],
) -> None:
    # Embedded as the image does (the same vectors as torch: the torch query below finds it).
    done = run_ingest_cli(bad_folder.parent, engine_url, "corpus", settings=onnx_env)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [
        "error: corpus/b-latin1.txt: not valid UTF-8 text (invalid continuation byte at byte 3)",
        "error: corpus/d-corrupt.pdf: unreadable PDF: Stream has ended unexpectedly",
    ]
    assert "5 files: 3 ingested, 0 unchanged, 0 pruned, 2 failed;" in done.stdout
    texts = texts_by_source(engine)
    assert texts == {
        "corpus/a-quokka.txt": "Quokka facts. The quokka is small.",
        "corpus/c-surrogate.txt": "Wombat facts.\ufffd Wombats dig burrows.",
        "corpus/z-zebra.md": "Every zebra has its own pattern of black and white stripes.",
    }
    top = search(engine_url, embedder, "zebra stripes")
    assert top[0].source == "corpus/z-zebra.md"

    again = run_ingest_cli(bad_folder.parent, engine_url, "corpus", settings=onnx_env)
    assert again.returncode == 1
    assert "5 files: 0 ingested, 3 unchanged, 0 pruned, 2 failed;" in again.stdout


def test_cli_exits_0_when_all_is_well_and_2_without_a_database(
    tmp_path: Path, engine_url: str, onnx_env: dict[str, str]
) -> None:
    (tmp_path / "good.md").write_text(GOOD)
    ok = run_ingest_cli(tmp_path, engine_url, "good.md", settings=onnx_env)
    assert ok.returncode == 0, ok.stderr
    assert "1 files: 1 ingested" in ok.stdout and "error:" not in ok.stderr

    closed = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    unreachable = run_ingest_cli(tmp_path, closed, "good.md")
    assert unreachable.returncode == 2
    assert "error: cannot use the database: connection failed" in unreachable.stderr


def test_every_reader_cleans_titles_headings_and_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine, embedder: Embedder
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "guide.md").write_bytes(  # a byte-order mark first, as Windows editors write
        b"\xef\xbb\xbf# Quo\x00kka\x07 guide\n\n## Hab\x1bitat\n\nRott\x00nest\x0cIsland.\n"
    )
    (tmp_path / "page.html").write_bytes(
        b"<title>Wom\x00bat</title><h1>Bur\x01rows</h1><p>Deep\x00 and\x0bwide.</p>"
    )
    (tmp_path / "notes.txt").write_bytes(b"Tab\tand line\nbreaks stay.\x7f\x00")
    (tmp_path / "book.pdf").write_bytes(make_pdf(["Kangaroo\x00 facts\x07 page\x0ctwo."]))
    report = ingest_paths(
        [tmp_path], engine=engine, embedder=embedder, chunk_tokens=120, chunk_overlap=20
    )
    assert (report.ingested, report.errors) == (4, [])
    assert texts_by_source(engine) == {
        "guide.md": "Rottnest\nIsland.",
        "page.html": "Deep and\nwide.",
        "notes.txt": "Tab\tand line\nbreaks stay.",
        "book.pdf": "Kangaroo facts page\ntwo.",
    }
    titles = {str(r[0]) for r in rows(engine, "SELECT title FROM documents")}
    assert titles == {"Quokka guide", "Wombat", "notes", "book"}
    headings = {str(r[0]) for r in rows(engine, "SELECT heading_path FROM chunks")}
    assert headings == {"Quokka guide › Habitat", "Burrows", "", "Page 1"}
    for column in ("heading_path", "anchor", "text"):
        assert all(is_clean(str(r[0])) for r in rows(engine, f"SELECT {column} FROM chunks"))  # noqa: S608


def test_file_name_that_is_not_utf8_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine, embedder: Embedder
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / os.fsdecode(b"bad-\xff.md")).write_text(GOOD)
    (tmp_path / "good.md").write_text(GOOD)
    report = ingest_paths(
        [tmp_path], engine=engine, embedder=embedder, chunk_tokens=120, chunk_overlap=20
    )
    assert report.errors == [
        ("bad-\udcff.md", "the file name has control characters or bytes that are not UTF-8")
    ]
    assert report.ingested == 1 and set(texts_by_source(engine)) == {"good.md"}


def test_app_starts_when_a_document_cannot_be_ingested(
    bad_folder: Path,
    engine_url: str,
    engine: Engine,
    local_model: LocalModel,
    tmp_path: Path,
    onnx_env: dict[str, str],
) -> None:
    env = {
        **onnx_env,
        "DATABASE_URL": engine_url,
        "LLM_BASE_URL": local_model.base_url,
        "DOCS_DIR": str(bad_folder),
        "INGEST_ON_START": "true",
        "DATA_DIR": str(tmp_path),
        "LOG_LEVEL": "info",
    }
    log_path = tmp_path / "app.log"
    with app_process(env, log=log_path):
        logged = log_path.read_text()
        # Outside the working directory, files are named relative to DOCS_DIR's last part.
        folder = bad_folder.name
        assert f"{folder}/d-corrupt.pdf not ingested: unreadable PDF" in logged
        assert f"{folder}/b-latin1.txt not ingested: not valid UTF-8" in logged
        assert "5 files: 3 ingested, 0 unchanged, 0 pruned, 2 failed" in logged
        quokka = texts_by_source(engine)[f"{folder}/a-quokka.txt"]
        assert quokka == "Quokka facts. The quokka is small."
