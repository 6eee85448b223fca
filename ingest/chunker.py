"""Heading-aware chunking by tokens, with overlap.

Chunks never cross a section boundary, so every chunk has one heading path to cite.
Inside a section, paragraphs are packed up to the token budget; a paragraph longer than
the budget is cut into windows. Adjacent chunks of a section share ``overlap`` tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.tokens import encoding
from ingest.readers import Section

_SLUG_DROP = re.compile(r"[^a-z0-9\s-]")


@dataclass(frozen=True)
class ChunkDraft:
    heading_path: str
    anchor: str
    text: str
    token_count: int


def slugify(heading: str) -> str:
    """GitHub-style anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"\s+", "-", _SLUG_DROP.sub("", heading.lower()).strip()) or "top"


def chunk_sections(sections: list[Section], *, max_tokens: int, overlap: int) -> list[ChunkDraft]:
    chunks: list[ChunkDraft] = []
    for section in sections:
        heading_path = " › ".join(section.headings)
        anchor = slugify(section.headings[-1]) if section.headings else "top"
        for tokens in _windows(section.text, max_tokens=max_tokens, overlap=overlap):
            text = encoding().decode(tokens).strip()
            if text:
                chunks.append(ChunkDraft(heading_path, anchor, text, len(tokens)))
    return chunks


def _windows(text: str, *, max_tokens: int, overlap: int) -> list[list[int]]:
    enc = encoding()
    separator = enc.encode("\n\n")
    step = max_tokens - overlap
    windows: list[list[int]] = []
    current: list[int] = []
    for paragraph in re.split(r"\n\s*\n", text):
        tokens = enc.encode(paragraph.strip(), disallowed_special=())
        for start in range(0, len(tokens), step):
            piece = tokens[start : start + step]
            joined = current + separator + piece if current else piece
            if len(joined) <= max_tokens:
                current = joined
            else:
                windows.append(current)
                current = (current[-overlap:] if overlap else []) + piece
    if current:
        windows.append(current)
    return windows
