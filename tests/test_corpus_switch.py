"""DOCS_DIR is the whole corpus: switching it leaves no document of the old one cited."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.db import make_sync_engine
from app.rag.embedder import Embedder
from ingest.corpus import ingest_corpus
from tests.conftest import DOCS, ROOT, make_settings, scalar, sign_in
from tests.sse import chat

PAGES = {
    "importing.md": "# Importing files into Frobnicator\n\nFrobnicator imports PDF files "
    "with `frob import FILE.pdf`. Scanned PDF files need OCR first: run `frob ocr`.\n",
    "install.md": "# Installing Frobnicator\n\nInstall Frobnicator with `pipx install "
    "frobnicator`, then run `frob init` in an empty folder.\n",
    "support.md": "# Getting help\n\nWrite to the Frobnicator team on the forum; answers "
    "usually come within a day.\n",
}
QUESTIONS = ["How do I ingest PDF files?", "How do I install it?", "How do I run the tests?"]


@pytest.fixture
def my_docs(tmp_path: Path) -> Path:
    folder = tmp_path / "my-docs"
    folder.mkdir()
    for name, text in PAGES.items():
        (folder / name).write_text(text)
    return folder


def test_switching_docs_dir_leaves_no_old_document_cited(
    start_app,
    docs_database,
    embedder: Embedder,
    my_docs: Path,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    url = docs_database()  # the bundled docs, as the app's first start leaves them
    engine = make_sync_engine(url)
    first = ingest_corpus(
        make_settings(database_url=url, docs_dir=DOCS), engine=engine, embedder=embedder
    )
    bundled = first.files
    assert bundled > 5 and first.skipped == bundled
    assert scalar(engine, "SELECT count(*) FROM documents") == bundled
    caplog.set_level(logging.INFO, logger="ragship.ingest")
    switched = ingest_corpus(
        make_settings(database_url=url, docs_dir=my_docs), engine=engine, embedder=embedder
    )
    assert (switched.ingested, switched.pruned, switched.outside) == (3, bundled, bundled)
    assert f"removed {bundled} documents outside DOCS_DIR" in caplog.text
    sources = scalar(engine, "SELECT string_agg(source, ',' ORDER BY source) FROM documents")
    assert sources == "my-docs/importing.md,my-docs/install.md,my-docs/support.md"
    engine.dispose()
    app = start_app(database_url=url)
    cited: dict[str, list[str]] = {}
    with sign_in(app.url, "switcher@example.com") as client:
        for question in QUESTIONS:
            events = chat(client, question)
            cited[question] = [s["source"] for s in dict(events)["sources"]["sources"]]
    assert all(s.startswith("my-docs/") for c in cited.values() for s in c), cited
    assert "my-docs/importing.md" in cited[QUESTIONS[0]]  # answered from the new corpus


def test_keep_others_keeps_documents_outside_docs_dir(
    new_database, embedder: Embedder, my_docs: Path
) -> None:  # type: ignore[no-untyped-def]
    url = new_database()
    engine = make_sync_engine(url)
    try:
        settings = make_settings(database_url=url, docs_dir=my_docs, ingest_keep_others=True)
        ingest_corpus(settings, engine=engine, embedder=embedder)
        hand = my_docs.parent / "by-hand"
        hand.mkdir()
        (hand / "extra.md").write_text("# Extra\n\nA page ingested by hand.\n")
        ingest_corpus(
            make_settings(database_url=url, docs_dir=hand, ingest_keep_others=True),
            engine=engine,
            embedder=embedder,
        )
        assert scalar(engine, "SELECT count(*) FROM documents") == 4
        missing = make_settings(database_url=url, docs_dir=my_docs.parent / "typo")
        report = ingest_corpus(missing, engine=engine, embedder=embedder)
        assert report.pruned == 0 and scalar(engine, "SELECT count(*) FROM documents") == 4
    finally:
        engine.dispose()


def test_ingest_only_and_reset_from_the_command_line(
    new_database, my_docs: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    url = new_database()

    def ingest(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ingest", *args],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    other = tmp_path / "other"
    other.mkdir()
    (other / "one.md").write_text("# One\n\nA single page.\n")
    ingest(str(my_docs), str(other))
    out = ingest(str(other), "--only")  # `other` is now the whole corpus
    assert "1 files: 0 ingested, 1 unchanged, 3 pruned" in out
    engine = make_sync_engine(url)
    try:
        assert scalar(engine, "SELECT string_agg(source, ',') FROM documents") == "other/one.md"
        assert "reset: 1 documents deleted" in ingest("--reset")
        assert scalar(engine, "SELECT count(*) FROM documents") == 0
        assert scalar(engine, "SELECT count(*) FROM chunks") == 0
    finally:
        engine.dispose()
