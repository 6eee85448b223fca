"""The CPU work of ingest that is not embedding: read, hash, parse, drop chrome, chunk.

`prepare` turns one file into a `Prepared` document (or None when its content and
embedding model are unchanged); it runs on a worker thread while the previous files are
being embedded, so that reading and chunking hide behind the encoder.

`embedding_text` is what is embedded for a chunk: the document title and heading path
come first, so a chunk knows which page and section it belongs to.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from app.textclean import is_clean
from ingest.boilerplate import without_blocks
from ingest.chunker import ChunkDraft, chunk_sections
from ingest.readers import SUPPORTED_SUFFIXES, ParsedDocument, ReadError, read_document


@dataclass(frozen=True)
class Prepared:
    """A changed file, ready to embed: its key, content hash, title and chunks."""

    source: str
    digest: str
    title: str
    drafts: list[ChunkDraft]

    def texts(self) -> list[str]:
        return [embedding_text(self.title, d.heading_path, d.text) for d in self.drafts]


def embedding_text(title: str, heading_path: str, text: str) -> str:
    """Title, heading path and text, one per line (the title left out when the heading
    path already starts with it)."""
    lead = heading_path if heading_path.startswith(title) else f"{title}\n{heading_path}"
    return f"{lead.strip()}\n{text}"


def read_changed(
    path: Path, source: str, known: dict[str, str]
) -> tuple[str, ParsedDocument] | None:
    """(content hash, parsed document), or None when `known` (source → hash of what is
    stored for this embedding model) says the file is unchanged.

    Raises `ReadError` for a file that cannot be read as a document, OSError when the
    file cannot be read at all."""
    if not is_clean(source):
        raise ReadError("the file name has control characters or bytes that are not UTF-8")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if known.get(source) == digest:
        return None
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise ReadError(f"unsupported file type {path.suffix!r}")
    return digest, read_document(path, data)


def chunk_document(
    source: str,
    digest: str,
    parsed: ParsedDocument,
    *,
    chrome: frozenset[str],
    max_tokens: int,
    overlap: int,
) -> Prepared:
    """`parsed` less the `chrome` paragraphs, chunked. Raises `ReadError` when nothing is
    left."""
    kept = without_blocks(parsed, chrome)
    drafts = chunk_sections(kept.sections, max_tokens=max_tokens, overlap=overlap)
    if not drafts:
        raise ReadError("no text to ingest (only page chrome)")
    return Prepared(source, digest, parsed.title, drafts)
