"""Undo a PDF's hard line wraps, so a paragraph reads as one line again.

Text extracted from a PDF has a line break wherever the typesetter wrapped a line, so a
sentence is cut in two, and retrieval quotes half sentences. `join_wrapped_lines` works on
the blocks between blank lines (blank lines, i.e. paragraph breaks, are kept) and, inside a
block, decides each line break from the two lines around it:

- a break before a list item ("•", "-", "*", "1.", "2)", "a)") is kept;
- a break after a short line (under 60% of the block's longest line, or under 30
  characters) is kept: a short line is a heading or the last line of a paragraph, not a
  wrapped one;
- a break before a line that looks like a heading (short, capitalised, no closing
  punctuation) is kept when the line before ends a sentence;
- any other break is a wrap: it becomes a space, and a word split by a hyphen at the end
  of the line is joined again ("connec-" + "tion" gives "connection"). The hyphen stays
  when the next line starts with a capital or a digit ("COVID-" + "19") or when the
  document writes the hyphenated word elsewhere ("well-known"); a soft hyphen (U+00AD)
  always goes.
"""

from __future__ import annotations

import re

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_LIST_ITEM = re.compile(r"[•◦▪‣∙·*\-–—]\s|\(?\d{1,3}[.)]\s|\(?[a-z][.)]\s")
_SENTENCE_END = re.compile(r"[.!?:][\"'’”)\]]*$")
_CLOSING_PUNCTUATION = re.compile(r"[.,;:!?]$")
_SPLIT_WORD = re.compile(r"([^\W\d_]+)[-\u2010]$")
_LEADING_WORD = re.compile(r"[^\W\d_]+")
_COMPOUND = re.compile(r"[^\W\d_]+(?:[-\u2010][^\W\d_]+)+")
_SOFT_HYPHEN = "\u00ad"
_SHORT_RATIO = 0.6
_SHORT_CHARS = 30


def join_wrapped_lines(pages: list[str]) -> list[str]:
    """Each page's text (lines separated by "\\n") with its wrapped lines joined and its
    paragraph breaks as one blank line. The hyphenated words the document writes inside
    a line, on any page, decide which split words keep their hyphen. Never raises."""
    words = _COMPOUND.findall("\n".join(pages))
    compounds = {word.lower().replace("\u2010", "-") for word in words}
    return [_join_page(page, compounds) for page in pages]


def _join_page(text: str, compounds: set[str]) -> str:
    blocks = (_join_block(block, compounds) for block in _BLANK_LINE.split(text))
    return "\n\n".join(block for block in blocks if block)


def _join_block(block: str, compounds: set[str]) -> str:
    lines = [line.strip() for line in block.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    longest = max(len(line) for line in lines)
    joined = [lines[0]]
    for previous, line in zip(lines, lines[1:], strict=False):
        if _keeps_break(previous, line, longest):
            joined.append(line)
        else:
            joined[-1] = _join(joined[-1], line, compounds)
    return "\n".join(joined)


def _keeps_break(previous: str, line: str, longest: int) -> bool:
    if _LIST_ITEM.match(line) or _is_short(previous, longest):
        return True
    return bool(_SENTENCE_END.search(previous)) and _looks_like_heading(line, longest)


def _is_short(line: str, longest: int) -> bool:
    return len(line) < max(_SHORT_RATIO * longest, _SHORT_CHARS)


def _looks_like_heading(line: str, longest: int) -> bool:
    return (
        _is_short(line, longest)
        and (line[0].isupper() or line[0].isdigit())
        and not _CLOSING_PUNCTUATION.search(line)
    )


def _join(left: str, right: str, compounds: set[str]) -> str:
    """Join a wrapped line to the text before it, mending a word split at the line end."""
    if left.endswith(_SOFT_HYPHEN):
        return left[:-1] + right
    split = _SPLIT_WORD.search(left)
    following = _LEADING_WORD.match(right)
    if split is None or following is None or not right[0].islower():
        return f"{left}{right}" if split else f"{left} {right}"
    if f"{split.group(1)}-{following.group(0)}".lower() in compounds:
        return left + right
    return left[:-1] + right
