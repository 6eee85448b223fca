"""`count_text_tokens` (app/tokens.py): the count in pieces is the whole text's count, on
real prompts and on random texts made of the characters the tokenizer's pattern treats
apart (line breaks, other whitespace, apostrophes, letters, digits, punctuation)."""

from __future__ import annotations

import random
from pathlib import Path

from app.rag.prompt import build_messages
from app.rag.retrieve import Passage
from app.tokens import _piece_tokens, count_message_tokens, count_text_tokens, count_tokens

DOCS = Path(__file__).resolve().parent.parent / "docs"
# Each is its own class for the pattern: line breaks, spaces and other Unicode whitespace
# (no-break space, line separator, an ideographic space, a separator `str.isspace` counts
# and Unicode does not), contractions, Latin and other letters, a combining mark, digits,
# punctuation and symbols, an emoji, and the markers' characters.
ALPHABET = [
    "\n", "\n", "\n", "\r", "\r\n", " ", " ", "  ", "\t", "\u00a0", "\u2028", "\u3000", "\x1c",
    "'", "'s", "'ll", "'RE", "a", "word", "Éte", "Ω", "\u0301", "7", "2024", ".", ",", "?!",
    "<<<", ">>>", "[1]", "›", "-", "```", "😀", "#", "$",
]  # fmt: skip


def _sections() -> list[str]:
    texts = [page.read_text() for page in sorted(DOCS.glob("*.md"))]
    return [s.strip() for text in texts for s in text.split("\n## ") if len(s.strip()) > 200]


def _prompt(sections: list[str], question: str, first: int) -> list[dict[str, str]]:
    passages = [
        Passage(n, 1, "docs/x.md", "Guide", "Install › Linux", "a", sections[(first + n) % len(sections)], 0.1, 0.5)
        for n in range(5)
    ]  # fmt: skip
    return build_messages(question=question, passages=passages, history=[])


def test_a_prompt_counts_the_same_in_pieces_as_whole() -> None:
    sections = _sections()
    assert len(sections) > 20
    for first in range(0, len(sections), 3):
        for question in ("How do I ingest PDF files?", "what's\n\n  the cap?\n", "¿Qué es?\r\n"):
            user = _prompt(sections, question, first)[-1]["content"]
            assert count_text_tokens(user) == count_tokens(user), (first, question)


def test_random_texts_count_the_same_in_pieces_as_whole() -> None:
    rng = random.Random(17)
    for _ in range(3000):
        text = "".join(rng.choices(ALPHABET, k=rng.randint(0, 120)))
        assert count_text_tokens(text) == count_tokens(text), repr(text)


def test_random_lines_count_the_same_when_their_pieces_were_counted_before() -> None:
    """Long lines (kept counted) recombined in new orders, with new separators."""
    rng = random.Random(29)
    lines = ["".join(rng.choices(ALPHABET[13:], k=rng.randint(30, 90))) for _ in range(40)]
    for _ in range(500):
        parts = rng.sample(lines, 6)
        text = "".join(
            p + rng.choice(["\n", "\n\n", " \n", "\n\n\n", ".\n", "\r\n"]) for p in parts
        )
        assert count_text_tokens(text) == count_tokens(text), repr(text)


def test_a_sources_paragraphs_are_counted_once_across_prompts() -> None:
    sections = _sections()
    count_message_tokens(_prompt(sections, "How do I ingest PDF files?", 0))
    before = _piece_tokens.cache_info()
    messages = _prompt(sections, "What does the kill switch do?", 0)  # same sources, new code
    assert count_message_tokens(messages) == 3 + sum(
        3 + count_tokens(m["content"]) for m in messages
    )
    after = _piece_tokens.cache_info()
    assert after.hits - before.hits >= 5  # at least a paragraph of each source
    assert after.misses - before.misses < after.hits - before.hits
