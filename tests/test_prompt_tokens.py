"""`user_tokens` (app/rag/prompt_tokens.py): the last message counted in segments is the
whole message's count, on the bundled docs and on random sources made of the characters
the tokenizer's pattern treats apart; each source's text is counted once."""

from __future__ import annotations

import random
from pathlib import Path

from app.rag.prompt import build_messages, new_boundary, source_segments
from app.rag.prompt_tokens import _text_tokens, user_tokens
from app.rag.retrieve import Passage
from app.tokens import count_tokens

DOCS = Path(__file__).resolve().parent.parent / "docs"
# Each is its own class for the pattern: line breaks; spaces and other Unicode whitespace
# (no-break space, line and paragraph separators, an ideographic space, vertical tab, form
# feed, next line); characters `str.isspace` counts and Unicode does not (a separator), or
# neither does (the Mongolian vowel separator, a byte order mark); a lone surrogate;
# contractions, Latin and other letters, a combining mark, digits, punctuation and
# symbols, an emoji, and the markers' own characters.
ALPHABET = [
    "\n", "\n", "\n", "\r", "\r\n", " ", " ", "  ", "\t", "\u00a0", "\u2028", "\u2029",
    "\u3000", "\x0b", "\x0c", "\x85", "\x1c", "\u180e", "\ufeff", "\ud800", "'", "'s", "'ll",
    "'RE", "a", "word", "Éte", "Ω", "\u0301", "7", "2024", ".", ",", "?!", "<<<", ">>>",
    "[1]", "›", "-", "```", "😀", "#", "$",
]  # fmt: skip


def _sections() -> list[str]:
    texts = [page.read_text() for page in sorted(DOCS.glob("*.md"))]
    return [s.strip() for text in texts for s in text.split("\n## ") if len(s.strip()) > 200]


def _passage(n: int, text: str, title: str = "Guide", heading: str = "Install › Linux") -> Passage:
    return Passage(n, 1, "docs/x.md", title, heading, "a", text, 0.1, 0.5)


def _both(passages: list[Passage], question: str, flagged: set[int]) -> tuple[int, int]:
    """(the segments' sum, the whole last message's count) for one prompt."""
    boundary = new_boundary()
    built = build_messages(
        question=question, passages=passages, history=[], boundary=boundary, flagged=flagged
    )
    segments = source_segments(passages, boundary=boundary, flagged=flagged)
    return user_tokens(segments, question), count_tokens(built[-1]["content"])


def test_prompts_of_the_bundled_docs_count_the_same_in_segments() -> None:
    sections = _sections()
    assert len(sections) > 20
    questions = ("How do I ingest PDF files?", "what's\n\n  the cap?\n", "¿Qué es?\r\n", "")
    for first in range(0, len(sections), 3):
        passages = [_passage(n, sections[(first + n) % len(sections)]) for n in range(5)]
        for question in questions:
            summed, whole = _both(passages, question, {2} if first % 2 else set())
            assert summed == whole, (first, question)


def test_random_sources_count_the_same_in_segments() -> None:
    rng = random.Random(17)

    def text(most: int) -> str:
        return "".join(rng.choices(ALPHABET, k=rng.randint(0, most)))

    def source() -> str:  # half start with a letter: summed in segments, not counted whole
        return rng.choice(["", "x"]) + text(120)

    for _ in range(1500):
        passages = [
            _passage(n, source(), title=text(8), heading=rng.choice(["", text(8)]))
            for n in range(rng.randint(0, 5))
        ]
        flagged = set(rng.sample(range(1, 6), rng.randint(0, 2)))
        summed, whole = _both(passages, text(40), flagged)
        assert summed == whole, passages


def test_a_sources_text_is_counted_once_across_prompts() -> None:
    sections = _sections()
    passages = [_passage(n, sections[n]) for n in range(5)]
    _both(passages, "How do I ingest PDF files?", set())
    before = _text_tokens.cache_info()
    summed, whole = _both(passages, "What does the kill switch do?", set())  # a new code
    after = _text_tokens.cache_info()
    assert summed == whole
    assert (after.hits - before.hits, after.misses - before.misses) == (5, 0)
