"""Ingest files into PostgreSQL: read → chunk → embed → replace the document in one transaction.

Incremental: a file whose content hash (and embedding model) is unchanged is skipped
without embedding anything. Each file is its own transaction, and whatever goes wrong
with one file (unreadable, not UTF-8, a damaged PDF, refused by the database) is recorded
in the report with a one-line reason while the other files go on.

Throughput: reading and chunking run on a worker thread while the encoder (which leaves
the GIL while it computes) embeds the chunks of earlier files, and chunks of several
files are embedded in one call of about `EMBED_GROUP` texts. Paragraphs repeated on most
of the first `CHROME_SAMPLE` changed files are page chrome and are dropped everywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session
from tqdm import tqdm

from app.models import Chunk, Document, utcnow
from app.rag.embedder import TextEmbedder
from ingest.boilerplate import repeated_blocks
from ingest.keyword_statistics import refresh_keyword_statistics
from ingest.prepare import Prepared, chunk_document, read_changed
from ingest.prune import prune_all_but, prune_under
from ingest.readers import SUPPORTED_SUFFIXES, ParsedDocument, ReadError

log = logging.getLogger("ragship.ingest")

EMBED_GROUP = 256  # chunks embedded per encoder call
CHROME_SAMPLE = 40  # changed files read first to find the corpus's repeated chrome


@dataclass
class IngestReport:
    """What a run did; `errors` holds (source, one-line reason) for each file not ingested."""

    files: int = 0
    ingested: int = 0
    skipped: int = 0
    pruned: int = 0
    outside: int = 0  # of `pruned`: documents outside the paths (an earlier corpus)
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


def source_key(path: Path, root: Path | None = None) -> str:
    """How a file is named in the database, never by an absolute server path: relative to
    the working directory when inside it, else relative to the folder that was ingested
    (`root`, named by its last part: "manual/intro.html"), else by the file's name."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd()).as_posix()
    except ValueError:
        pass
    if root is not None:
        top = root.resolve()
        try:
            return (Path(top.name) / resolved.relative_to(top)).as_posix()
        except ValueError:
            pass
    return resolved.name


def discover(paths: Iterable[Path], report: IngestReport) -> list[Path]:
    return [path for path, _ in discover_sources(paths, report)]


def discover_sources(paths: Iterable[Path], report: IngestReport) -> list[tuple[Path, str]]:
    """Every supported file under `paths` with its source key; a missing path is reported."""
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            found += [
                (p, source_key(p, path))
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
            ]
        elif path.is_file():
            found.append((path, source_key(path)))
        else:
            report.errors.append((source_key(path), "no such file or directory"))
    return found


def ingest_paths(
    paths: list[Path],
    *,
    engine: Engine,
    embedder: TextEmbedder,
    chunk_tokens: int,
    chunk_overlap: int,
    prune: bool = False,
    whole_corpus: bool = False,
    progress: bool = False,
) -> IngestReport:
    """Ingest every supported file under `paths`; a failed file is reported, not raised.

    ``prune``: delete the documents under `paths` whose files are gone. ``whole_corpus``:
    `paths` are the whole corpus, so delete every document not found under them (an
    earlier corpus included); skipped when a path is missing, so a typo never empties
    the corpus. Raises only for what is not one file's fault: an error while pruning."""
    started = time.perf_counter()
    report = IngestReport()
    files = discover_sources(paths, report)
    report.files = len(files)
    with Session(engine) as session:
        known = {
            source: digest
            for source, digest in session.execute(
                select(Document.source, Document.content_hash).where(
                    Document.embedding_model == embedder.name
                )
            )
        }
    group: list[Prepared] = []
    outcomes = _prepared(files, known, max_tokens=chunk_tokens, overlap=chunk_overlap)
    for source, outcome in tqdm(outcomes, total=len(files), desc="ingest", unit="file",
                                disable=not progress):  # fmt: skip
        if isinstance(outcome, Exception):
            log.debug("ingest of %s failed", source, exc_info=outcome)
            report.errors.append((source, _failure_reason(outcome)))
        elif outcome is None:
            report.skipped += 1
        else:
            group.append(outcome)
            if sum(len(p.drafts) for p in group) >= EMBED_GROUP:
                _embed_and_write(group, engine=engine, embedder=embedder, report=report)
                group = []
    _embed_and_write(group, engine=engine, embedder=embedder, report=report)
    present = {source for _, source in files}
    missing = any(not path.exists() for path in paths)
    if whole_corpus and not missing:
        report.pruned, report.outside = prune_all_but(_prefixes(paths), present, engine=engine)
    elif prune or whole_corpus:
        report.pruned = prune_under(_prefixes(paths), present, engine=engine)
    if report.ingested or report.pruned:
        refresh_keyword_statistics(engine)
    report.seconds = time.perf_counter() - started
    return report


_Outcome = Prepared | None | Exception


def _prepared(
    files: list[tuple[Path, str]], known: dict[str, str], *, max_tokens: int, overlap: int
) -> Iterator[tuple[str, _Outcome]]:
    """Each file's outcome, in order: prepared, None (unchanged), or the error it raised.

    The first `CHROME_SAMPLE` files are read first to find the repeated chrome; the rest
    are read and chunked on a worker thread, ahead of the caller."""
    sample: dict[str, tuple[str, ParsedDocument] | None | Exception] = {}
    for path, source in files[:CHROME_SAMPLE]:
        try:
            sample[source] = read_changed(path, source, known)
        except Exception as err:  # one file's failure must not stop the others
            sample[source] = err
    chrome = repeated_blocks([r[1] for r in sample.values() if isinstance(r, tuple)])

    def work(item: tuple[Path, str]) -> tuple[str, _Outcome]:
        path, source = item
        try:
            got = sample.pop(source) if source in sample else read_changed(path, source, known)
            if isinstance(got, Exception):
                raise got
            if got is None:
                return source, None
            digest, parsed = got
            return source, chunk_document(
                source, digest, parsed, chrome=chrome, max_tokens=max_tokens, overlap=overlap
            )
        except Exception as err:  # one file's failure must not stop the others
            return source, err

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-read") as pool:
        yield from pool.map(work, files)


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


def _embed_and_write(
    group: list[Prepared], *, engine: Engine, embedder: TextEmbedder, report: IngestReport
) -> None:
    """Embed the chunks of `group` in one call, then replace each document in its own
    transaction; a file the database refuses is reported and keeps its old version."""
    if not group:
        return
    try:
        vectors = embedder.embed([t for p in group for t in p.texts()])
    except Exception as err:  # the encoder failing fails these files, not the run
        report.errors += [(p.source, _failure_reason(err)) for p in group]
        return
    start = 0
    for prepared in group:
        end = start + len(prepared.drafts)
        try:
            _write(prepared, vectors[start:end], engine=engine, model=embedder.name)
        except Exception as err:  # one file's failure must not stop the others
            log.debug("writing %s failed", prepared.source, exc_info=err)
            report.errors.append((prepared.source, _failure_reason(err)))
        else:
            report.ingested += 1
            report.chunks += len(prepared.drafts)
        start = end


def _write(prepared: Prepared, vectors: list[list[float]], *, engine: Engine, model: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(delete(Document).where(Document.source == prepared.source))
        document_id = session.execute(
            insert(Document)
            .values(
                source=prepared.source,
                title=prepared.title,
                content_hash=prepared.digest,
                embedding_model=model,
                chunk_count=len(prepared.drafts),
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
                    "title": prepared.title,
                    "heading_path": d.heading_path,
                    "anchor": d.anchor,
                    "text": d.text,
                    "token_count": d.token_count,
                    "embedding": vector,
                }
                for n, (d, vector) in enumerate(zip(prepared.drafts, vectors, strict=True))
            ],
        )


def _prefixes(roots: list[Path]) -> list[str]:
    """The source keys of `roots` (folders or files), without a trailing slash."""
    return [source_key(root).rstrip("/") for root in roots]
