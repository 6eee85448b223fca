"""Chunk boundaries fall between characters: no chunk holds a U+FFFD its source did not,
and the chunks, less their overlaps, give the source back."""

from __future__ import annotations

import unicodedata

import pytest

from app.tokens import count_tokens
from ingest.chunker import chunk_sections, normalize, split_text
from ingest.readers import Section
from tests.conftest import DOCS

TEXTS = {
    "emoji": "🚀" * 1000,
    "emoji sequences": "👩🏽‍💻 🏳️‍🌈 👍🏿 " * 150 + "🇫🇷🇩🇪🇯🇵" * 100,
    "cjk": "数据库连接池配置说明。词元不应被切开！" * 120,
    "accents": "Ça coûte très cher à Zürich, señor; naïve façade, Ærøskøbing. " * 80,
    "combining": "e\u0301a\u0300o\u0308n\u0303 " * 400 + "Z\u0351\u0352\u0353\u0354" * 200,
    "long words": "Donaudampfschifffahrtsgesellschaftskapitänsmütze" * 60 + " " + "a" * 3000,
    "source with U+FFFD": "caf\ufffd au lait \ufffd\ufffd " * 200,
    "mixed paragraphs": "\n\n".join(
        ["Short intro.", "🚀 " * 200, "数据库" * 150, "Plain closing words. " * 40]
    ),
    "prose": (DOCS / "ingest.md").read_text(),
}
SETTINGS = [(300, 40), (120, 20), (32, 0), (40, 39)]
# Tokens a window may come up short at each end to cut between characters: a code point
# is at most 3 cl100k tokens, but a letter with four combining marks or a zero-width-joiner
# emoji sequence (each kept whole) takes 9 or 10.
SLACK = {"emoji sequences": 10, "combining": 9}


@pytest.mark.parametrize(("max_tokens", "overlap"), SETTINGS)
@pytest.mark.parametrize("name", TEXTS)
def test_chunks_less_their_overlaps_give_the_source_back(
    name: str, max_tokens: int, overlap: int
) -> None:
    source = normalize(TEXTS[name])
    windows = split_text(TEXTS[name], max_tokens=max_tokens, overlap=overlap)
    assert "".join(w.text[w.overlap :] for w in windows) == source
    for previous, window in zip(windows, windows[1:], strict=False):
        assert 0 <= window.overlap < len(window.text)
        assert previous.text.endswith(window.text[: window.overlap])
        assert count_tokens(window.text[: window.overlap]) <= overlap + 1
    for window in windows:
        assert 0 < window.tokens <= max_tokens
        assert count_tokens(window.text) <= max_tokens  # counted again as one text, too
        if "\ufffd" not in source:
            assert "\ufffd" not in window.text
        first, last = window.text[0], window.text[-1]
        assert unicodedata.category(first) not in {"Mn", "Mc", "Me"}, "cut before a mark"
        assert "\u200d" not in (first, last), "cut at a zero-width joiner"
        assert not "\ufe00" <= first <= "\ufe0f", "cut before a variation selector"
    if "\n\n" not in source:  # one paragraph: windows are full but for the boundary slack
        slack = SLACK.get(name, 3)
        assert all(w.tokens >= max_tokens - overlap - slack for w in windows[:1])
        assert all(w.tokens >= max_tokens - 2 * slack for w in windows[1:-1])


def test_a_thousand_rockets_make_clean_chunks_at_the_default_settings() -> None:
    chunks = chunk_sections([Section((), "🚀" * 1000)], max_tokens=300, overlap=40)
    assert len(chunks) == 12
    assert all(set(chunk.text) == {"🚀"} for chunk in chunks)
    assert 257 <= chunks[0].token_count <= 260  # the first piece: chunk_tokens - overlap
    assert all(297 <= chunk.token_count <= 300 for chunk in chunks[1:-1])


def test_paragraphs_are_packed_whole_and_never_glued() -> None:
    text = "First paragraph here.\n\n  Second one.  \n \nThird."
    chunks = chunk_sections([Section(("A",), text)], max_tokens=300, overlap=40)
    assert [c.text for c in chunks] == ["First paragraph here.\n\nSecond one.\n\nThird."]
    long = "\n\n".join(f"Paragraph {n} says something about chunking." for n in range(60))
    windows = split_text(long, max_tokens=50, overlap=10)
    for window in windows[1:]:  # an overlap that crosses a paragraph keeps the blank line
        assert window.text.startswith("Paragraph") or "\n\n" in window.text
        assert ".Paragraph" not in window.text
