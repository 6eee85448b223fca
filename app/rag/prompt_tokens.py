r"""The last message's tokens, counted exactly, with each source's text counted once.

Before every answer the context check counts the whole prompt (`check_fits`). The sources
are the corpus's chunks, and they come back for many questions. The markers around them
hold a code that is new to every prompt (app/rag/prompt.py). Counted whole, the last
message of a first turn took about 0.4 ms of the event loop for about 1,500 tokens.
`user_tokens` counts it in segments instead (`source_segments`), and keeps each source
text's count for the process, as `text_tokens` does.

Why the sum is exact: tiktoken splits a text with cl100k's pattern (`CL100K_PATTERN`) and
encodes each match on its own: byte-pair merges never cross a match. The count is
therefore a sum at any position that no match crosses, provided both sides split as they
would alone. Every cut here is after a "\n" and before a character that is not
whitespace: after the title line, before a source's text (checked: `user_tokens` counts
the message whole when a text is empty or starts with whitespace), and after the text's
"\n", before `<<<END`. The pattern's alternatives match letters, digits or a contraction
with no "\r" or "\n" in them (other whitespace may lead a run of letters), or punctuation
with "\r" and "\n" only at its end, or whitespace only. So no match holds both a "\n" and
the character after it. The match that ends at a cut ends with the "\n"; its loops read
on only to stop at the next character, which is not whitespace, or at the segment's end.
There ``\s++$`` matches the run that ``\s*[\r\n]`` matches in the whole text. Nothing
looks behind, so the next segment splits as it would alone. `tests/test_prompt_tokens.py`
checks the sum against the whole count on the bundled docs and on random texts built to
hit these cases; the eval questions' prompts are checked through `prepare_chat`
(tests/test_early_reservation.py). With an encoding whose pattern is another, the
message is counted whole.
"""

from __future__ import annotations

from functools import lru_cache

from app.rag.prompt import user_content
from app.tokens import count_tokens, encoding

# cl100k's pre-tokenizer pattern as tiktoken writes it (tiktoken_ext/openai_public.py; the
# offline copy is the same): the argument above is made for it.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


def user_tokens(segments: list[str], question: str) -> int:
    """Tokens (cl100k) of the last message `build_messages` makes from the sources in
    ``segments`` (`source_segments`) and ``question``: exactly
    ``count_tokens(user_content("".join(segments), question))``. About 0.06 ms when the
    sources' texts were counted before, and about a whole count when they are new
    (`python -m bench hotpath`)."""
    markers, texts = segments[0::2], segments[1::2]
    if not _splittable() or any(text[0].isspace() for text in texts):  # each ends "\n"
        return count_tokens(user_content("".join(segments), question))
    return (
        sum(count_tokens(marker) for marker in markers[:-1])
        + sum(_text_tokens(text) for text in texts)
        + count_tokens(user_content(markers[-1], question))  # ">>>" and "\n\n" join
    )


@lru_cache(maxsize=2048)
def _text_tokens(text: str) -> int:
    """`count_tokens` of a source's text and its line break, memoised: corpus text, never
    a user's. 2,048 texts of about 1.2 KB (CHUNK_TOKENS 300) hold about 3 MB per process,
    beside `text_tokens`' own copies of the texts."""
    return count_tokens(text)


@lru_cache(maxsize=1)
def _splittable() -> bool:
    """Whether the encoding splits with `CL100K_PATTERN` (tiktoken's private ``_pat_str``)."""
    return getattr(encoding(), "_pat_str", None) == CL100K_PATTERN
