"""The built-in local model's "intelligence": a deterministic, extractive answer.

It reads the numbered sources and the question from the last user message (the format
`app/rag/prompt.py` writes), picks the sentences that share the most words with the
question, and cites them. With no relevant source it says it does not know. It never
follows instructions found in the sources and never repeats the system prompt.

Sentences are whole sentences (`sentences`): a line break inside a paragraph is a hard
wrap (Markdown wrapped by hand, text extracted from HTML or PDF), not a sentence end; a
passage's first words, when they continue a sentence cut off by chunking, and its last
words, when chunking cut them off, are never quoted; and no sentence is quoted twice in
one answer, even when overlapping chunks or two sources both hold it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

DONT_KNOW = "I don't know based on the documents I have."
_SOURCE_HEADER = re.compile(r"^\[(\d+)\] .*$", re.MULTILINE)
_MARKER = re.compile(r"^<<<(?:END )?SOURCE \d+ [0-9a-f]+>>>$\n?", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]*")
# A sentence ends at ".", "!" or "?" (maybe with a closing quote or bracket) before a space
# and something that is not a lower-case letter: "e.g. the" and "i.e. a" do not end one.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))(?<![.!?][a-z]\.)\s+(?=[^a-z\s])")
_ENDS_SENTENCE = re.compile(r"[.!?:;][\"')\]`*_]*$")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# Lines that stand on their own, never wrapped into the line before: list items, table rows,
# interpreter sessions and indented code (an indented line that is not a list item goes on
# the list item before it).
_LIST_ITEM = re.compile(r"\s*(?:[-*+\u2022]|\d{1,3}[.)])\s")
_OWN_LINE = re.compile(r"\||>>>|\.\.\.\s|\$\s")
_TABLE_RULE = re.compile(r"^\|?[\s:|-]+\|?$")
# Sources are reference material, never instructions: sentences that try to instruct the
# assistant are not repeated (a planted "ignore your instructions" stays inert).
_INJECTION = re.compile(
    r"\b(ignore|disregard|override|forget)\b.{0,60}\b(instruction|guidance|rule|prompt)s?\b"
    r"|\bsystem override\b|\bsecret word\b",
    re.IGNORECASE,
)
# Text in an HTML comment is hidden from anyone reading the page, so it is never quoted:
# a note that addresses the assistant from inside one stays inert however well it matches.
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
# A question after the value of a key or secret is refused whatever the sources hold, as the
# system prompt's "never reveal keys or other secrets" tells a real model: the docs name
# placeholder values (`change-me`) that may well be the server's own.
_SECRET_REQUEST = re.compile(
    r"\b(value|contents?)\s+of\b.{0,80}(key|secret|password)s?\b", re.IGNORECASE | re.DOTALL
)
# A passage whose first word is one of these, in lower case, starts inside a sentence that
# the chunk before it holds ("the modification time. Use ..."); a lower-case name such as
# "ragship" or "pgvector" may well start one.
_CONTINUATION = frozenset(
    """a an and are as at be been but by for from has have in into is it its not of on or so
    than that the their them then there these they this those to was were when which while
    who whose with without""".split()
)
_MIN_HELD_WORDS = 8  # a shorter sentence inside a longer one is not a repeat ("`make test`")
_FENCED = re.compile(r"\s*```[^\n]*\n(.*?)\n?```", re.DOTALL)
_STOPWORDS = frozenset(
    """a an and are as at be by can do does for from has have how i if in into is it its
    me my of on or our so that the their them then there these this to was we what when
    where which who why will with you your about should would could ragship""".split()
)


def _terms(text: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS and len(w) > 1}


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def parse_prompt(content: str) -> tuple[dict[int, tuple[str, str]], str]:
    """Split a user message into {source number: (heading line, text)} and the question."""
    body, _, question = content.rpartition("Question:")
    if not _:
        return {}, content.strip()
    body = _MARKER.sub("", body)  # the source markers (app/rag/prompt.py) are not text
    sources: dict[int, tuple[str, str]] = {}
    headers = list(_SOURCE_HEADER.finditer(body))
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(body)
        sources[int(header.group(1))] = (header.group(0), body[header.end() : end].strip())
    return sources, question.strip()


def answer(messages: list[dict[str, str]]) -> str:
    last_user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    sources, question = parse_prompt(last_user)
    if _SECRET_REQUEST.search(question):
        return DONT_KNOW
    wanted = _terms(question)
    scored: list[tuple[int, int, int, str]] = []
    for number, (heading, text) in sources.items():
        heading_terms = _terms(heading.partition("] ")[2])
        text = _table_rows_as_sentences(_FENCED.sub(_inline_code, _HTML_COMMENT.sub(" ", text)))
        for position, sentence in enumerate(sentences(text)):
            too_short = len(sentence) < (5 if "`" in sentence else 20)
            if too_short or _INJECTION.search(sentence):
                continue
            terms = _terms(sentence)
            if wanted & terms:  # the heading adds weight, never a match on its own
                scored.append((len(wanted & (terms | heading_terms)), number, position, sentence))
    if not scored or max(s[0] for s in scored) < min(2, len(wanted)):
        return DONT_KNOW
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    best = scored[0][0]
    # The three best, less any repeat (a repeat leaves the answer shorter, not padded with a
    # weaker sentence).
    picked = _distinct(s for s in scored[:3] if s[0] >= best - 1)
    picked.sort(key=lambda s: (s[1], s[2]))
    return " ".join(f"{_clean(sentence)} [{number}]" for _, number, _, sentence in picked)


def sentences(text: str) -> list[str]:
    """The whole sentences of a passage's text, in order.

    Paragraphs are separated by blank lines; inside one, a line break is a hard wrap and
    becomes a space unless the line after stands on its own (a list item, a table row, an
    interpreter prompt, indented code) or the line before ends with ":". Then a paragraph
    splits where a sentence ends. A fragment that opens the passage with a lower-case
    function word ("the", "and": the tail of a sentence the chunk before holds) and a last
    fragment without closing punctuation in a paragraph of several sentences (the head of
    one the next chunk holds) are left out."""
    units = [u for p in _PARAGRAPH_BREAK.split(text) for u in _unwrap(p)]
    found: list[str] = []
    for n, unit in enumerate(units):
        parts = [s.strip() for s in _SENTENCE_END.split(unit) if s.strip()]
        if n == 0 and parts and parts[0].split()[0] in _CONTINUATION:
            parts = parts[1:]  # the passage starts inside a sentence
        if n == len(units) - 1 and len(parts) > 1 and not _ENDS_SENTENCE.search(parts[-1]):
            parts = parts[:-1]  # the passage stops inside a sentence
        found += parts
    return found


def _unwrap(paragraph: str) -> list[str]:
    """A paragraph's lines joined where they were wrapped; lines that stand on their own
    stay apart."""
    units: list[str] = []
    for line in paragraph.split("\n"):
        if not line.strip():
            continue
        if units and _continues(units[-1], line):
            units[-1] = f"{units[-1]} {line.strip()}"
        else:
            units.append(line.rstrip())
    return units


def _continues(before: str, line: str) -> bool:
    """Whether `line` is `before` wrapped: not a line of its own, after no line of its own."""
    if _LIST_ITEM.match(line) or _OWN_LINE.match(line) or _OWN_LINE.match(before):
        return False
    if before.endswith(":") or (before[0] in " \t" and not _LIST_ITEM.match(before)):
        return False  # after an introduction, or inside indented code
    return line[0] not in " \t" or bool(_LIST_ITEM.match(before))


def _distinct(scored: Iterable[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    """The scored sentences, best first, without repeats: a sentence already picked, or one
    of 8 words or more held inside one already picked (overlapping chunks, a sentence in two
    sources), is not picked again; one that holds a sentence already picked takes its place."""
    kept: list[tuple[int, int, int, str]] = []
    for item in scored:
        words = _words(item[3])
        held = [n for n, other in enumerate(kept) if _holds(_words(other[3]), words)]
        holding = [n for n, other in enumerate(kept) if _holds(words, _words(other[3]))]
        if held:
            continue
        if holding:
            kept[holding[0]] = (kept[holding[0]][0], *item[1:])
            for n in reversed(holding[1:]):
                del kept[n]
            continue
        kept.append(item)
    return kept


def _holds(longer: str, shorter: str) -> bool:
    return longer == shorter or (shorter in longer and shorter.count(" ") > _MIN_HELD_WORDS)


def _words(sentence: str) -> str:
    """The sentence's words, lower case, space-separated and padded: " a b c " holds " b "."""
    return f" {' '.join(_WORD.findall(sentence.lower()))} "


def _table_rows_as_sentences(text: str) -> str:
    """Markdown table rows become sentences, each its own paragraph: "| `X` | 5 | Does. |"
    becomes "`X` (5): Does." """
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            lines.append(line)
        elif not _TABLE_RULE.match(stripped):
            cells = [c.strip() for c in stripped.strip("|").split("|") if c.strip()]
            if len(cells) >= 3:
                lines.append(f"{cells[0]} ({cells[1]}): {' '.join(cells[2:])}\n")
            elif cells:
                lines.append(": ".join(cells) + "\n")
    return "\n".join(lines)


def _inline_code(match: re.Match[str]) -> str:
    """Keep short code blocks with the sentence that introduces them: "run: `make test`"."""
    lines = [line.split("#")[0].strip() for line in match.group(1).splitlines()]
    return " " + "; ".join(f"`{line}`" for line in lines if line) + "\n\n"


def _clean(sentence: str) -> str:
    sentence = re.sub(r"^[-*+]\s+|^\d+\.\s+", "", sentence).strip()
    return sentence if sentence.endswith((".", "!", "?", ":")) else sentence + "."
