"""A PDF's hard line wraps are joined at ingest, so chunks hold whole sentences."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app.db import make_sync_engine
from app.rag.embedder import Embedder
from ingest.pdftext import join_wrapped_lines
from ingest.pipeline import ingest_paths
from ingest.readers import read_document
from tests.pdf import make_pdf


def wrapped_pdf(pages: list[list[str]]) -> bytes:
    """A PDF whose pages show these lines the way a typesetter writes them: one text
    operator per line, moved down a line (`T*`) each time. Helvetica, WinAnsi encoding."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    font = 3 + 2 * len(pages)
    for i, lines in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        escaped = (
            line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines
        )
        shown = " T* ".join(f"({line}) Tj" for line in escaped)
        stream = f"BT /F1 11 Tf 14 TL 72 720 Td {shown} ET".encode("cp1252")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


POOLING = [
    "Connection pooling",
    "The connection pool keeps a few database connections open so that each",
    "request does not pay for a new one. Set its size with DB_POOL_SIZE; the de-",
    "fault suits a small deploy. A pool larger than the server's limit is a well-",
    "known way to make requests fail under load.",
    "Before you change it:",
    "• check the server's max_connections setting, which bounds every pool of",
    "every replica together;",
    "• count your replicas.",
]
REPLICAS = [
    "Every replica opens its own pool, so the total grows with each new repli-",
    "ca. This well-known limit is easy to miss when autoscaling adds replicas at",
    "night.",
]


@pytest.fixture
def engine(new_database: Callable[[], str]) -> Iterator[Engine]:
    engine = make_sync_engine(new_database())
    yield engine
    engine.dispose()


def test_wrapped_pdf_lines_become_whole_sentences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine, embedder: Embedder
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pooling.pdf").write_bytes(wrapped_pdf([POOLING, REPLICAS]))
    report = ingest_paths(
        [tmp_path], engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40
    )
    assert (report.ingested, report.errors) == (1, [])
    with engine.connect() as conn:
        chunks = conn.execute(text("SELECT heading_path, text FROM chunks ORDER BY ordinal"))
        pages = [tuple(row) for row in chunks]
    assert pages == [
        (
            "Page 1",
            "Connection pooling\n"
            "The connection pool keeps a few database connections open so that each request "
            "does not pay for a new one. Set its size with DB_POOL_SIZE; the default suits a "
            "small deploy. A pool larger than the server's limit is a well-known way to make "
            "requests fail under load.\n"
            "Before you change it:\n"
            "• check the server's max_connections setting, which bounds every pool of every "
            "replica together;\n"
            "• count your replicas.",
        ),
        (
            "Page 2",
            "Every replica opens its own pool, so the total grows with each new replica. "
            "This well-known limit is easy to miss when autoscaling adds replicas at night.",
        ),
    ]


@pytest.mark.parametrize(
    ("lines", "joined"),
    [
        pytest.param(
            "A sentence wrapped by the typesetter in the middle of\nits words, then ended.",
            "A sentence wrapped by the typesetter in the middle of its words, then ended.",
            id="wrap",
        ),
        pytest.param(
            "First paragraph that the typesetter wrapped at the end of\nthe line.\n\n"
            "Second paragraph after a blank line, wrapped once more at\nthe end.",
            "First paragraph that the typesetter wrapped at the end of the line.\n\n"
            "Second paragraph after a blank line, wrapped once more at the end.",
            id="blank lines stay",
        ),
        pytest.param(
            "Steps to follow when the database refuses new connections:\n"
            "1. Lower DB_POOL_SIZE on every replica of the service that you\nrun.\n"
            "2. Restart.\na) or scale down",
            "Steps to follow when the database refuses new connections:\n"
            "1. Lower DB_POOL_SIZE on every replica of the service that you run.\n"
            "2. Restart.\na) or scale down",
            id="numbered list",
        ),
        pytest.param(
            "The last line of this paragraph ends a sentence right at the end.\n"
            "Next Heading\n"
            "The text under the next heading is long enough to be a wrapped line too.",
            "The last line of this paragraph ends a sentence right at the end.\n"
            "Next Heading\n"
            "The text under the next heading is long enough to be a wrapped line too.",
            id="heading after a sentence",
        ),
        pytest.param(
            "Symptoms were first described in the report on COVID-\n"
            "19 and its long-term effects on the staff who answered the sup\u00ad\n"
            "port line at night.",
            "Symptoms were first described in the report on COVID-19 and its long-term effects "
            "on the staff who answered the support line at night.",
            id="hyphen before a digit stays, soft hyphen goes",
        ),
        pytest.param(
            "Name      Size\npool      10\ntimeout   30 s",
            "Name      Size\npool      10\ntimeout   30 s",
            id="short lines of a table stay",
        ),
    ],
)
def test_join_wrapped_lines(lines: str, joined: str) -> None:
    assert join_wrapped_lines([lines]) == [joined]


@pytest.mark.parametrize(
    ("title", "shown"),
    [
        (None, "quarterly-report"),
        ("about:blank", "quarterly-report"),
        ("https://intranet.example/report", "quarterly-report"),
        ("Untitled", "quarterly-report"),
        ("Q3 Report", "Q3 Report"),
    ],
)
def test_a_pdf_is_titled_by_its_metadata_unless_that_is_a_placeholder(
    title: str | None, shown: str
) -> None:
    pdf = make_pdf(["Revenue grew in the third quarter."], title=title)
    assert read_document(Path("reports/quarterly-report.pdf"), pdf).title == shown
