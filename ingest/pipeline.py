"""Ingest files into PostgreSQL: read → chunk → embed → replace the document in one transaction.

Incremental: a file whose content hash (and embedding model) is unchanged is skipped
without embedding anything. Each file is its own transaction, and whatever goes wrong
with one file (unreadable, not UTF-8, a damaged PDF, refused by the database) is recorded
in the report with a one-line reason while the other files go on.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session
from tqdm import tqdm

from app.models import Chunk, Document, utcnow
from app.rag.embedder import Embedder
from app.textclean import is_clean
from ingest.chunker import chunk_sections
from ingest.readers import SUPPORTED_SUFFIXES, ReadError, read_document

log = logging.getLogger("ragship.ingest")


@dataclass
class IngestReport:
    """What a run did; `errors` holds (source, one-line reason) for each file not ingested."""

    files: int = 0
    ingested: int = 0
    skipped: int = 0
    pruned: int = 0
    chunks: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        rate = self.chunks / self.seconds if self.seconds else 0.0
        return (
            f"{self.files} files: {self.ingested} ingested, {self.skipped} unchanged, "
            f"{self.pruned} pruned, {len(self.errors)} failed; {self.chunks} chunks embedded "
            f"in {self.seconds:.1f}s ({rate:.1f} chunks/s)"
        )


def source_key(path: Path) -> str:
    """How a file is named in the database: relative to the working directory when inside it."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return resolved.as_posix()


def discover(paths: Iterable[Path], report: IngestReport) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
            )
        elif path.is_file():
            found.append(path)
        else:
            report.errors.append((source_key(path), "no such file or directory"))
    return found


def ingest_paths(
    paths: list[Path],
    *,
    engine: Engine,
    embedder: Embedder,
    chunk_tokens: int,
    chunk_overlap: int,
    prune: bool = False,
    progress: bool = False,
) -> IngestReport:
    """Ingest every supported file under `paths`; a failed file is reported, not raised.

    Raises only for what is not one file's fault: an error while pruning."""
    started = time.perf_counter()
    report = IngestReport()
    files = discover(paths, report)
    report.files = len(files)
    for path in tqdm(files, desc="ingest", unit="file", disable=not progress):
        try:
            embedded = _ingest_file(
                path,
                engine=engine,
                embedder=embedder,
                max_tokens=chunk_tokens,
                overlap=chunk_overlap,
            )
        except Exception as err:  # one file's failure must not stop the others
            log.debug("ingest of %s failed", path, exc_info=err)
            report.errors.append((source_key(path), _failure_reason(err)))
            continue
        if embedded is None:
            report.skipped += 1
        else:
            report.ingested += 1
            report.chunks += embedded
    if prune:
        report.pruned = _prune(paths, engine=engine)
    report.seconds = time.perf_counter() - started
    return report


def _failure_reason(err: Exception) -> str:
    """One short line saying why a file was not ingested (never the SQL or its values)."""
    if isinstance(err, ReadError):
        return str(err)
    if isinstance(err, StatementError) and err.orig is not None:
        what, detail = "database error", str(err.orig)
    elif isinstance(err, OSError):
        what, detail = "cannot read the file", err.strerror or str(err)
    else:
        what, detail = type(err).__name__, str(err)
    lines = detail.strip().splitlines()
    return f"{what}: {lines[0]}"[:200] if lines else what


def _ingest_file(
    path: Path, *, engine: Engine, embedder: Embedder, max_tokens: int, overlap: int
) -> int | None:
    """Returns the number of chunks embedded, or None when the file was unchanged.

    Raises `ReadError` for a file that cannot be read as a document, or whatever reading
    the file or writing to the database raised; the old document then stays as it was."""
    source = source_key(path)
    if not is_clean(source):
        raise ReadError("the file name has control characters or bytes that are not UTF-8")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with Session(engine) as session:
        existing = session.execute(
            select(Document.content_hash, Document.embedding_model).where(Document.source == source)
        ).first()
    if existing is not None and tuple(existing) == (digest, embedder.name):
        return None
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ReadError(f"unsupported file type {path.suffix!r}")
    parsed = read_document(path, data)
    drafts = chunk_sections(parsed.sections, max_tokens=max_tokens, overlap=overlap)
    vectors = embedder.embed([f"{d.heading_path}\n{d.text}" for d in drafts])
    with Session(engine) as session, session.begin():
        session.execute(delete(Document).where(Document.source == source))
        document_id = session.execute(
            insert(Document)
            .values(
                source=source,
                title=parsed.title,
                content_hash=digest,
                embedding_model=embedder.name,
                chunk_count=len(drafts),
                ingested_at=utcnow(),
            )
            .returning(Document.id)
        ).scalar_one()
        session.execute(
            insert(Chunk),
            [
                {
                    "document_id": document_id,
                    "ordinal": n,
                    "heading_path": d.heading_path,
                    "anchor": d.anchor,
                    "text": d.text,
                    "token_count": d.token_count,
                    "embedding": vector,
                }
                for n, (d, vector) in enumerate(zip(drafts, vectors, strict=True))
            ],
        )
    return len(drafts)


def _prune(roots: list[Path], *, engine: Engine) -> int:
    """Delete documents under the given roots whose files no longer exist."""
    prefixes = [source_key(root) for root in roots]
    with Session(engine) as session, session.begin():
        sources = session.execute(select(Document.source)).scalars().all()
        gone = [
            s
            for s in sources
            if any(s == p or s.startswith(p.rstrip("/") + "/") for p in prefixes)
            and not Path(s).exists()
        ]
        if gone:
            session.execute(delete(Document).where(Document.source.in_(gone)))
    return len(gone)
