"""The fixed prompt `python -m bench caps` hands the cap chain: the size of a real one.

The system prompt, PASSAGES passages of PASSAGE_WORDS words (about 300 tokens each, the
ingest chunk size) cut from docs/caps.md, and QUESTION, built by the app's own
`build_messages`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.rag.prompt import build_messages
from app.rag.retrieve import Passage
from app.settings import LOCAL_MODEL_ID
from app.tokens import count_message_tokens
from bench.fixtures import DOCS

QUESTION = "How do the daily spending caps and the rate limit work together?"
PASSAGES = 5
PASSAGE_WORDS = 220  # about 300 tokens, the ingest chunk size


@dataclass
class Prepared:
    """What `prepare` hands the chain (app/caps/chain.py HasMessages): the messages, and a
    call that goes to the model, so the chain reserves for it."""

    messages: list[dict[str, str]]
    models: list[str] = field(default_factory=lambda: [LOCAL_MODEL_ID])
    without_model: bool = False

    @property
    def prompt_tokens(self) -> int:
        return count_message_tokens(self.messages)


def prepared_prompt() -> Prepared:
    """The chat messages of the fixed prompt (system, passages, question)."""
    words = (DOCS / "caps.md").read_text(encoding="utf-8").split()
    passages = [
        Passage(
            chunk_id=n,
            document_id=1,
            source="docs/caps.md",
            title="The cap chain",
            heading_path=f"The cap chain > part {n + 1}",
            anchor=f"part-{n + 1}",
            text=" ".join(words[n * PASSAGE_WORDS : (n + 1) * PASSAGE_WORDS]),
            score=0.03,
            similarity=0.6,
        )
        for n in range(PASSAGES)
    ]
    return Prepared(build_messages(question=QUESTION, passages=passages, history=[]))
