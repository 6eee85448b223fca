"""Ingest files into PostgreSQL: read → chunk → embed → replace the document in one transaction.

Incremental: a file whose content hash (and embedding model) is unchanged is skipped
without embedding anything. A failure in one file is reported and the rest go on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import Session
from tqdm import tqdm

from app.models import Chunk, Document, utcnow
from app.rag.embedder import Embedder
from ingest.chunker import chunk_sections
from ingest.readers import SUPPORTED_SUFFIXES, ReadError, read_document


@dataclass
class IngestReport:
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
        except (ReadError, OSError) as err:
            report.errors.append((source_key(path), str(err)))
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


def _ingest_file(
    path: Path, *, engine: Engine, embedder: Embedder, max_tokens: int, overlap: int
) -> int | None:
    """Returns the number of chunks embedded, or None when the file was unchanged."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    source = source_key(path)
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
