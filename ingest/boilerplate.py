"""Text repeated across many pages of a corpus is page chrome, not content.

A navigation bar, a copyright line or a "Report a bug" box that the reader's structural
rules missed shows up as the same paragraph on most pages of a site. `repeated_blocks`
finds such paragraphs in a sample of parsed documents; `without_blocks` removes them.
Paragraphs are the blank-line-separated blocks that the readers produce.
"""

from __future__ import annotations

from collections import Counter

from ingest.readers import ParsedDocument, Section

MIN_DOCUMENTS = 5  # below this many documents nothing counts as repeated
SHARE = 0.5  # a block on at least this share of the documents is chrome
_MAX_BLOCK_CHARS = 400  # longer blocks are content, however often they repeat


def _blocks(text: str) -> list[str]:
    return [b.strip() for b in text.split("\n\n") if b.strip()]


def repeated_blocks(documents: list[ParsedDocument]) -> frozenset[str]:
    """Short paragraphs found on at least `SHARE` of `documents` (and on `MIN_DOCUMENTS`
    or more); empty when there are fewer than `MIN_DOCUMENTS` documents."""
    if len(documents) < MIN_DOCUMENTS:
        return frozenset()
    counts: Counter[str] = Counter()
    for doc in documents:
        counts.update(
            {b for s in doc.sections for b in _blocks(s.text) if len(b) <= _MAX_BLOCK_CHARS}
        )
    needed = max(MIN_DOCUMENTS, SHARE * len(documents))
    return frozenset(b for b, n in counts.items() if n >= needed)


def without_blocks(document: ParsedDocument, blocks: frozenset[str]) -> ParsedDocument:
    """`document` less the given paragraphs; sections left empty are dropped."""
    if not blocks:
        return document
    sections = []
    for section in document.sections:
        kept = [b for b in _blocks(section.text) if b not in blocks]
        if kept:
            sections.append(Section(section.headings, "\n\n".join(kept)))
    return ParsedDocument(document.title, sections)
