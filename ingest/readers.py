"""Read a file into titled sections: Markdown, plain text, HTML and PDF.

A section is the text under one heading, with the path of headings above it, so chunks
can cite "Deploy › Fly.io › Secrets" rather than a byte offset.

Whatever a reader extracts (title, headings, text) is cleaned with `clean_text` before it
goes further: PostgreSQL cannot store NUL, JSON cannot carry a lone surrogate, and the
other control characters mean nothing in an answer. A form feed or vertical tab becomes a
line break first, so the words on either side stay apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.textclean import clean_text
from ingest.html import html_sections
from ingest.pdftext import join_wrapped_lines

SUPPORTED_SUFFIXES = frozenset({".md", ".markdown", ".txt", ".text", ".html", ".htm", ".pdf"})
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class ReadError(Exception):
    """A file that cannot be ingested; the message says why."""


@dataclass(frozen=True)
class Section:
    headings: tuple[str, ...]
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    sections: list[Section]


def read_document(path: Path, data: bytes) -> ParsedDocument:
    """The file's clean title and non-empty sections; `path` only names the format (by its
    suffix) and the fallback title (its stem).

    Text files must be UTF-8 (a byte-order mark is dropped); a lone surrogate written in
    them (as WTF-8 or CESU-8 does) becomes U+FFFD. Raises `ReadError` for any other
    undecodable byte, an unsupported suffix, a PDF that cannot be read, or no text at all.
    """
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        doc = _read_pdf(data, path.stem)
    else:
        try:
            text = data.decode("utf-8-sig", errors="surrogatepass")
        except UnicodeDecodeError as err:
            raise ReadError(f"not valid UTF-8 text ({err.reason} at byte {err.start})") from err
        if suffix in {".md", ".markdown"}:
            doc = _read_markdown(text, path.stem)
        elif suffix in {".html", ".htm"}:
            doc = _read_html(text, path.stem)
        elif suffix in {".txt", ".text"}:
            doc = ParsedDocument(path.stem, [Section((), text)])
        else:
            raise ReadError(f"unsupported file type {suffix!r}")
    sections = [_clean_section(s) for s in doc.sections]
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise ReadError("no text to ingest (the file is empty)")
    return ParsedDocument(_clean_line(doc.title) or _clean_line(path.stem), sections)


def _clean_section(section: Section) -> Section:
    return Section(tuple(_clean_line(h) for h in section.headings), _clean_block(section.text))


def _clean_block(text: str) -> str:
    return clean_text(text.replace("\f", "\n").replace("\v", "\n"))


def _clean_line(text: str) -> str:
    """A title or heading: one line, clean, single-spaced."""
    return " ".join(_clean_block(text).split())


def _read_markdown(text: str, fallback_title: str) -> ParsedDocument:
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        sections.append(Section(tuple(h for _, h in stack), "\n".join(lines).strip()))
        lines.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _MD_HEADING.match(line)
        if match:
            flush()
            level = len(match.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, match.group(2).strip()))
        else:
            lines.append(line)
    flush()
    title = next((h for level, h in _first_headings(sections) if level == 1), fallback_title)
    return ParsedDocument(title, sections)


def _first_headings(sections: list[Section]) -> list[tuple[int, str]]:
    return [(len(s.headings), s.headings[-1]) for s in sections if s.headings]


def _read_html(text: str, fallback_title: str) -> ParsedDocument:
    title, sections = html_sections(text)
    return ParsedDocument(
        title or fallback_title,
        [Section(s.headings, "\n\n".join(s.blocks)) for s in sections],
    )


# Titles that tools write into a PDF's metadata without meaning them: a page printed from a
# browser tab is titled "about:blank" or its URL. The file name says more.
_PLACEHOLDER_TITLE = re.compile(r"^(?:about:|https?://|file:|untitled\b|document\d*$)", re.I)


def _pdf_title(metadata_title: object, fallback_title: str) -> str:
    title = str(metadata_title or "").strip()
    return fallback_title if not title or _PLACEHOLDER_TITLE.match(title) else title


def _read_pdf(data: bytes, fallback_title: str) -> ParsedDocument:
    import io

    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = _pdf_title(reader.metadata.title if reader.metadata else None, fallback_title)
    except Exception as err:  # pypdf raises many kinds on a damaged file; all mean the same
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReadError(f"unreadable PDF: {detail[:160]}") from err
    pages = join_wrapped_lines([_clean_block(text) for text in pages])
    return ParsedDocument(
        str(title), [Section((f"Page {n}",), text) for n, text in enumerate(pages, start=1)]
    )
