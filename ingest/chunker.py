"""Heading-aware chunking by tokens, with overlap.

Chunks never cross a section boundary, so every chunk has one heading path to cite.
Inside a section, paragraphs are packed up to the token budget; a paragraph longer than
the budget is cut into windows. Adjacent chunks of a section share up to ``overlap`` tokens.

Cuts fall between characters, never inside one. A cl100k token can hold part of a
character's UTF-8 bytes (an emoji takes two or three tokens), so decoding a slice of
tokens can split a character into U+FFFD. Here a cut moves to the nearest token boundary
that is also a character boundary (a window may end a token or three short of its budget),
and a chunk's text is a slice of the section's text, never decoded from tokens. A cut is
also kept from separating a character from the combining marks, zero-width joiner or
variation selector that belong to it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from app.tokens import encoding
from ingest.readers import Section

_SLUG_DROP = re.compile(r"[^a-z0-9\s-]")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SEPARATOR = "\n\n"
# Joins a section's headings into the heading path a chunk stores ("Guide › Install").
HEADING_SEPARATOR = " › "
_CONTINUATION_BYTES = bytes(range(0x80, 0xC0))
_ZWJ = "\u200d"


@dataclass(frozen=True)
class ChunkDraft:
    heading_path: str
    anchor: str
    text: str
    token_count: int


@dataclass(frozen=True)
class Window:
    """One chunk's slice of a text: its first `overlap` characters repeat the end of the
    window before it, and it counts `tokens` tokens."""

    text: str
    overlap: int
    tokens: int


def slugify(heading: str) -> str:
    """GitHub-style anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"\s+", "-", _SLUG_DROP.sub("", heading.lower()).strip()) or "top"


def section_anchor(headings: Sequence[str]) -> str:
    """The anchor a section is cited by: its last heading's slug, "top" before any heading.

    Its first chunk carries it; the section's later chunks carry ``anchor-2``, ... (see
    `chunk_sections`), so a citation of any chunk is resolved to its section through the
    heading path, never by parsing the suffix (a heading "Step 2" slugs to ``step-2``)."""
    return slugify(headings[-1]) if headings else "top"


def heading_list(heading_path: str) -> list[str]:
    """The headings of a stored heading path (the inverse of joining them for a chunk)."""
    return heading_path.split(HEADING_SEPARATOR) if heading_path else []


def chunk_sections(sections: list[Section], *, max_tokens: int, overlap: int) -> list[ChunkDraft]:
    """The chunks of each section in order, their text stripped, empty ones dropped.

    Anchors are unique within the document: the first chunk under a heading gets the
    heading's slug, later ones (the same section's next chunks, or a later section with the
    same heading, such as a second "Example") get ``slug-2``, ``slug-3``, ..."""
    chunks: list[ChunkDraft] = []
    used: set[str] = set()
    for section in sections:
        heading_path = HEADING_SEPARATOR.join(section.headings)
        base = section_anchor(section.headings)
        for window in split_text(section.text, max_tokens=max_tokens, overlap=overlap):
            text = window.text.strip()
            if text:
                anchor, n = base, 1
                while anchor in used:
                    n += 1
                    anchor = f"{base}-{n}"
                used.add(anchor)
                chunks.append(ChunkDraft(heading_path, anchor, text, window.tokens))
    return chunks


def normalize(text: str) -> str:
    """`text` as chunks see it: paragraphs (split at blank lines) stripped, empty ones
    dropped, and the rest joined by one blank line."""
    paragraphs = (p.strip() for p in _PARAGRAPH_BREAK.split(text))
    return _SEPARATOR.join(p for p in paragraphs if p)


def split_text(text: str, *, max_tokens: int, overlap: int) -> list[Window]:
    """Windows over `normalize(text)`: each at most `max_tokens` tokens (unless a single
    character needs more), adjacent ones sharing up to `overlap` tokens, and
    ``"".join(w.text[w.overlap:] for w in windows) == normalize(text)``.

    Paragraphs are packed whole while they fit; a paragraph longer than the budget is cut
    into pieces of `max_tokens - overlap` tokens. Requires 0 <= overlap < max_tokens."""
    source = normalize(text)
    offsets, paragraph_ends = _tokenize(source)
    windows: list[Window] = []
    start, end, shared = 0, 0, 0
    for piece_end in _pieces(offsets, paragraph_ends, step=max_tokens - overlap):
        if end and piece_end - start > max_tokens:
            windows.append(_window(source, offsets, start, end, shared))
            floor = max(end - overlap, piece_end - max_tokens)
            start = min(_next_cut(offsets, floor), end) if overlap else end
            shared = offsets[end] - offsets[start]
        end = piece_end
    if end:
        windows.append(_window(source, offsets, start, end, shared))
    return windows


def _window(source: str, offsets: list[int], start: int, end: int, shared: int) -> Window:
    return Window(source[offsets[start] : offsets[end]], shared, end - start)


def _tokenize(source: str) -> tuple[list[int], list[int]]:
    """For each token boundary of `source`, the character offset it falls at, or -1 where
    no cut may fall: inside a character, or between a character and a mark that belongs to
    it. Then the token offset where each paragraph ends, its separator included.

    Each paragraph and separator is encoded on its own, as the budget counts them."""
    enc = encoding()
    tokens: list[int] = []
    paragraph_ends: list[int] = []
    for n, paragraph in enumerate(source.split(_SEPARATOR)):
        if n:
            tokens += enc.encode(_SEPARATOR)
            paragraph_ends.append(len(tokens))
        tokens += enc.encode(paragraph, disallowed_special=())
    paragraph_ends.append(len(tokens))
    offsets = [0]
    chars = 0
    pieces = enc.decode_tokens_bytes(tokens)
    for n, piece in enumerate(pieces):
        chars += len(piece.translate(None, _CONTINUATION_BYTES))  # lead bytes: characters
        following = pieces[n + 1] if n + 1 < len(pieces) else b""
        inside = bool(following) and following[0] in _CONTINUATION_BYTES
        offsets.append(-1 if inside or _holds_together(source, chars) else chars)
    return offsets, paragraph_ends


def _holds_together(source: str, at: int) -> bool:
    """Whether the characters either side of offset `at` belong to one visible character."""
    if at <= 0 or at >= len(source) or source[at - 1] == "\n":
        return False
    after = source[at]
    return (
        source[at - 1] == _ZWJ
        or after == _ZWJ
        or unicodedata.category(after) in {"Mn", "Me", "Mc"}
        or "\ufe00" <= after <= "\ufe0f"  # variation selectors
        or "\U0001f3fb" <= after <= "\U0001f3ff"  # skin-tone modifiers
    )


def _pieces(offsets: list[int], paragraph_ends: list[int], *, step: int) -> list[int]:
    """Token offsets that tile the text into pieces of at most `step` tokens, each ending
    where a cut may fall and none running from one paragraph into the next."""
    ends: list[int] = []
    start = 0
    for paragraph_end in paragraph_ends:
        while start < paragraph_end:
            end = _previous_cut(offsets, min(start + step, paragraph_end), floor=start)
            start = end if end > start else _next_cut(offsets, start + 1)
            ends.append(start)
    return ends


def _previous_cut(offsets: list[int], at: int, *, floor: int) -> int:
    """The last token offset at or before `at`, and after `floor`, where a cut may fall;
    `floor` when there is none."""
    while at > floor and offsets[at] < 0:
        at -= 1
    return at


def _next_cut(offsets: list[int], at: int) -> int:
    """The first token offset at or after `at` where a cut may fall."""
    while offsets[at] < 0:
        at += 1
    return at
