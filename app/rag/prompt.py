"""Build the messages sent upstream: versioned system prompt, bounded history, numbered sources."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from app.rag.retrieve import Passage

PROMPT_VERSION = "answer-v1"
_PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


@lru_cache
def system_prompt(version: str = PROMPT_VERSION) -> str:
    return (_PROMPTS / f"{version}.txt").read_text(encoding="utf-8").strip()


def format_sources(passages: list[Passage]) -> str:
    if not passages:
        return "Sources:\n(none)"
    blocks = [
        f"[{n}] {p.title} › {p.heading_path}\n{p.text}"
        if p.heading_path
        else f"[{n}] {p.title}\n{p.text}"
        for n, p in enumerate(passages, start=1)
    ]
    return "Sources:\n" + "\n\n".join(blocks)


def build_messages(
    *, question: str, passages: list[Passage], history: list[dict[str, str]]
) -> list[dict[str, str]]:
    """System prompt, then prior turns (already bounded), then sources and the question."""
    return [
        {"role": "system", "content": system_prompt()},
        *history,
        {"role": "user", "content": f"{format_sources(passages)}\n\nQuestion: {question}"},
    ]
