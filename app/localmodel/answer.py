"""The built-in local model's "intelligence": a deterministic, extractive answer.

It reads the numbered sources and the question from the last user message (the format
`app/rag/prompt.py` writes), picks the sentences that share the most words with the
question, and cites them. With no relevant source it says it does not know. It never
follows instructions found in the sources and never repeats the system prompt.
"""

from __future__ import annotations

import re

DONT_KNOW = "I don't know based on the documents I have."
_SOURCE_HEADER = re.compile(r"^\[(\d+)\] .*$", re.MULTILINE)
_MARKER = re.compile(r"^<<<(?:END )?SOURCE \d+ [0-9a-f]+>>>$\n?", re.MULTILINE)
_WORD = re.compile(r"[a-z0-9][a-z0-9_\-]*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
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
        for position, sentence in enumerate(s.strip() for s in _SENTENCE_END.split(text)):
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
    picked = [s for s in scored if s[0] >= best - 1][:3]
    picked.sort(key=lambda s: (s[1], s[2]))
    return " ".join(f"{_clean(sentence)} [{number}]" for _, number, _, sentence in picked)


def _table_rows_as_sentences(text: str) -> str:
    """Markdown table rows become sentences: "| `X` | 5 | Does. |" becomes "`X` (5): Does." """
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            lines.append(line)
        elif not _TABLE_RULE.match(stripped):
            cells = [c.strip() for c in stripped.strip("|").split("|") if c.strip()]
            if len(cells) >= 3:
                lines.append(f"{cells[0]} ({cells[1]}): {' '.join(cells[2:])}")
            elif cells:
                lines.append(": ".join(cells))
    return "\n".join(lines)


def _inline_code(match: re.Match[str]) -> str:
    """Keep short code blocks with the sentence that introduces them: "run: `make test`"."""
    lines = [line.split("#")[0].strip() for line in match.group(1).splitlines()]
    return " " + "; ".join(f"`{line}`" for line in lines if line) + "\n"


def _clean(sentence: str) -> str:
    sentence = re.sub(r"^[-*+]\s+|^\d+\.\s+", "", sentence).strip()
    return sentence if sentence.endswith((".", "!", "?", ":")) else sentence + "."
