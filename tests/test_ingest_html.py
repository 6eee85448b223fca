"""HTML fit for manuals: definition terms kept, chrome dropped, admonitions not headings,
unique anchors, and sources that never show a server path; the last two on a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app.db import make_sync_engine
from app.rag.embedder import Embedder
from ingest.chunker import chunk_sections
from ingest.pipeline import ingest_paths
from ingest.readers import read_document

REFERENCE = """<html><head><title>Server Configuration</title></head><body>
<div class="navheader"><table><tr><td><a href="a.html">Prev</a></td><td><a href="u.html">Up</a></td>
<td><a href="index.html">Home</a></td><td><a href="n.html">Next</a></td></tr></table></div>
<nav><a href="/">Home</a> | <a href="/docs">Docs</a></nav>
<div class="refnamediv"><h2>Name</h2><p>pg_ctl — start, stop, or restart a server</p></div>
<h2>Options</h2>
<dl>
<dt><code>--pgdata=datadir</code></dt><dd><p>Specifies the file system location of the data.</p></dd>
<dt><code>shared_buffers</code> (integer)</dt><dd><p>Sets the amount of memory used for caching.</p></dd>
</dl>
<div class="note"><h3 class="title">Note</h3><p>Restart the server after changing it.</p></div>
<p>More text about options after the note.</p>
<table><tr><th>Setting</th><th>Default</th></tr><tr><td>port</td><td>5432</td></tr></table>
<pre>pg_ctl start -D /data
pg_ctl stop</pre>
<div class="navfooter"><a href="a.html">Prev</a> <a href="u.html">Up</a> <a href="n.html">Next</a></div>
<footer>Copyright 1996-2024</footer>
</body></html>"""

SPHINX = """<html><head><title>shutil</title></head><body>
<div class="sphinxsidebar" role="navigation"><h3>Table of Contents</h3><ul><li>shutil</li></ul></div>
<div class="body" role="main"><section id="shutil"><h1>shutil — file operations</h1>
<dl class="py function"><dt class="sig" id="shutil.copy2">shutil.copy2(src, dst)</dt>
<dd><p>Identical to copy() but also copies metadata.</p>
<div class="admonition warning"><p class="admonition-title">Warning</p><p>Not all metadata.</p></div>
</dd></dl></section></div></body></html>"""


def sections(html: str) -> dict[str, str]:
    doc = read_document(Path("page.html"), html.encode())
    return {" › ".join(s.headings): s.text for s in doc.sections}


def test_a_definition_term_is_in_the_chunk_of_its_description() -> None:
    doc = read_document(Path("page.html"), REFERENCE.encode())
    chunks = chunk_sections(doc.sections, max_tokens=300, overlap=0)
    described = [c.text for c in chunks if "caching" in c.text]
    assert described and "shared_buffers (integer): Sets the amount of memory" in described[0]
    assert any("--pgdata=datadir: Specifies" in c.text for c in chunks)


def test_navigation_chrome_is_not_a_chunk() -> None:
    doc = read_document(Path("page.html"), REFERENCE.encode())
    texts = [c.text for c in chunk_sections(doc.sections, max_tokens=300, overlap=0)]
    everything = "\n".join(texts)
    assert "Prev" not in everything and "Home" not in everything
    assert "Copyright" not in everything
    assert "Table of Contents" not in str(sections(SPHINX))


def test_a_note_does_not_become_the_heading() -> None:
    found = sections(REFERENCE)
    assert not any(path.endswith(("Note", "Warning")) for path in found)
    assert "Note: Restart the server" in found["pg_ctl › Options"]
    assert "More text about options" in found["pg_ctl › Options"]
    sphinx = sections(SPHINX)
    assert "Warning: Not all metadata." in sphinx["shutil — file operations › shutil.copy2"]


def test_reference_names_and_api_terms_are_in_the_heading_path() -> None:
    found = sections(REFERENCE)
    assert "pg_ctl" in found and "pg_ctl › Options" in found
    assert "shutil — file operations › shutil.copy2" in sections(SPHINX)


def test_tables_and_code_keep_their_rows_and_lines() -> None:
    options = sections(REFERENCE)["pg_ctl › Options"]
    assert "Setting | Default\nport | 5432" in options
    assert "pg_ctl start -D /data\npg_ctl stop" in options


@pytest.fixture
def engine(new_database: Callable[[], str]) -> Iterator[Engine]:
    engine = make_sync_engine(new_database())
    yield engine
    engine.dispose()


def test_anchors_are_unique_within_a_document(
    engine: Engine, embedder: Embedder, tmp_path: Path
) -> None:
    long = " ".join(f"Sentence {n} about the example." for n in range(120))
    (tmp_path / "guide.md").write_text(
        f"# Guide\n\n## Example\n\n{long}\n\n## Other\n\nText.\n\n## Example\n\nAgain.\n"
    )
    ingest_paths([tmp_path], engine=engine, embedder=embedder, chunk_tokens=64, chunk_overlap=8)
    with engine.connect() as conn:
        anchors = conn.execute(text("SELECT anchor FROM chunks ORDER BY ordinal")).scalars().all()
    assert len(anchors) > 4 and len(set(anchors)) == len(anchors)
    assert anchors[:2] == ["example", "example-2"] and "other" in anchors


def test_sources_never_contain_an_absolute_path(
    engine: Engine, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "manual"
    (corpus / "ref").mkdir(parents=True)
    (corpus / "ref" / "pg_ctl.html").write_text(REFERENCE)
    (tmp_path / "single.md").write_text("# Single\n\nA file given on its own.\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the files are outside the working directory
    report = ingest_paths(
        [corpus, tmp_path / "single.md"],
        engine=engine,
        embedder=embedder,
        chunk_tokens=300,
        chunk_overlap=40,
    )
    assert report.errors == []
    with engine.connect() as conn:
        sources = set(conn.execute(text("SELECT source FROM documents")).scalars())
    assert sources == {"manual/ref/pg_ctl.html", "single.md"}


def test_text_repeated_across_many_pages_is_dropped(
    engine: Engine, embedder: Embedder, tmp_path: Path
) -> None:
    banner = "<div><p>Acme Docs · Report a problem · Version 9</p></div>"
    for n in range(6):
        (tmp_path / f"page{n}.html").write_text(
            f"<html><body>{banner}<h1>Page {n}</h1><p>Unique content number {n}.</p></body></html>"
        )
    ingest_paths([tmp_path], engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=0)
    with engine.connect() as conn:
        texts = conn.execute(text("SELECT text FROM chunks")).scalars().all()
    assert len(texts) == 6 and not any("Report a problem" in t for t in texts)
