"""What the levers bench measures per answer: asked over HTTP, then read from the ledger.

`ask` streams one question through ``POST /api/chat`` (time to first token, total time,
the text); `Ledger` reads what the service recorded for it (cost, reservation, prompt
tokens) and for the history summaries of a conversation.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

import httpx
from sqlalchemy import Engine, text

_CALL = text(
    "SELECT cost_usd, reserved_usd, input_tokens FROM llm_calls "
    "WHERE trace_id = :t AND feature = 'chat'"
)
_SUMMARIES = text(
    "SELECT cost_usd, reserved_usd, input_tokens, output_tokens FROM llm_calls "
    "WHERE conversation_id = :c AND feature = 'summary' ORDER BY id"
)


@dataclass(frozen=True)
class Answer:
    """One answer as the client saw it."""

    ttft: float  # seconds to the first token
    total: float  # seconds to the end of the stream
    cost: Decimal  # US dollars, from the `done` event
    text: str
    trace_id: str
    conversation_id: str


@dataclass(frozen=True)
class Item:
    """One call as the ledger recorded it (US dollars, tokens; seconds when streamed)."""

    cost: Decimal
    reserved: Decimal
    prompt_tokens: int
    ttft: float | None = None
    total: float | None = None
    text: str = ""


def ask(client: httpx.Client, question: str, conversation_id: str | None = None) -> Answer:
    """Ask `question` (in `conversation_id`, when given); raises unless it ends in `done`."""
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    name, done, meta = "", None, None
    body: dict[str, object] = {"message": question}
    if conversation_id:
        body["conversation_id"] = conversation_id
    with client.stream("POST", "/api/chat", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:") and name == "meta":
                meta = json.loads(line[5:])
            elif line.startswith("data:") and name == "token":
                first = first or time.perf_counter()
                parts.append(json.loads(line[5:])["text"])
            elif line.startswith("data:") and name == "done":
                done = json.loads(line[5:])
    if done is None or meta is None:
        raise RuntimeError(f"{question!r} did not end with 'done'")
    finished = time.perf_counter()
    return Answer(
        (first or finished) - started,
        finished - started,
        Decimal(done["cost_usd"]),
        "".join(parts),
        meta["trace_id"],
        meta["conversation_id"],
    )


class Ledger:
    """Reads the call ledger of the bench database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def items(self, answers: list[Answer]) -> list[Item]:
        """The ledger's record of each answer, in order."""
        out = []
        with self.engine.connect() as conn:
            for a in answers:
                row = conn.execute(_CALL, {"t": a.trace_id}).one()
                out.append(
                    Item(
                        Decimal(row.cost_usd),
                        Decimal(row.reserved_usd),
                        int(row.input_tokens),
                        a.ttft,
                        a.total,
                        a.text,
                    )
                )
        return out

    def summaries(self, conversation_id: str) -> list[Item]:
        """The history-summary calls a conversation made, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(_SUMMARIES, {"c": uuid.UUID(conversation_id)}).all()
        return [
            Item(Decimal(r.cost_usd), Decimal(r.reserved_usd), int(r.input_tokens)) for r in rows
        ]
