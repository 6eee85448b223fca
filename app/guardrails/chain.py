"""The guardrails, in order, in one place (like the cap chain in `app/caps/chain.py`).

1. input (`screen.py`), in the cap chain's prepare step, after input bounds and the rate
   limit and before the reservation: a block refuses the question at $0 (400, recorded in
   the ledger with admission `guardrail` and in `guardrail_triggers`);
2. retrieval: passages with sentences addressed to an assistant are flagged, marked as
   such in the prompt, and their sentences are watched for in the output;
3. PII redaction of the question before it goes upstream (GUARDRAIL_PII_REDACTION);
4. output (`output.py`), around the stream: a block stops the upstream and retracts.
"""

from __future__ import annotations

import re
import uuid
from functools import lru_cache
from typing import Protocol

from app.guardrails.output import OutputGuard
from app.guardrails.patterns import INJECTION, INSTRUCTION
from app.guardrails.record import record_triggers
from app.guardrails.screen import screen_question
from app.guardrails.verdict import OUTPUT_RULES, GuardrailBlocked, Verdict
from app.observability.redact import redact
from app.rag.prompt import system_prompt
from app.rag.retrieve import Passage
from app.services import Services
from app.settings import Settings

Trigger = tuple[str, Verdict]  # (layer, verdict)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


async def screen_input(
    services: Services,
    *,
    user_id: uuid.UUID,
    trace_id: str,
    question: str,
    embedding: list[float],
) -> list[Trigger]:
    """The input checks' flags; raises `GuardrailBlocked` (after recording the trigger)
    when a check blocks."""
    settings = services.settings
    verdicts = await screen_question(
        question,
        embedding,
        settings=settings,
        attacks=services.attacks,
        moderation=services.llm.openai if settings.guardrail_moderation else None,
    )
    block = next((v for v in verdicts if v.action == "block"), None)
    if block is not None:
        async with services.sessions() as session:
            record_triggers(
                session,
                [("input", block)],
                user_id=user_id,
                trace_id=trace_id,
                policy=settings.content_logging,
            )
            await session.commit()
        raise GuardrailBlocked(block)
    return [("input", v) for v in verdicts]


def screen_sources(
    settings: Settings, passages: list[Passage]
) -> tuple[list[int], list[str], list[Trigger]]:
    """(numbers of instruction-like sources from 1, their instruction sentences, flags)."""
    if settings.guardrail_modes.get("instruction_in_source", "on") == "off":
        return [], [], []
    flagged: list[int] = []
    planted: list[str] = []
    flags: list[Trigger] = []
    for n, passage in enumerate(passages, start=1):
        sentences = instruction_sentences(passage.text)
        if sentences:
            flagged.append(n)
            planted += sentences
            flags.append(
                ("retrieval", Verdict("instruction_in_source", "flag", sentences[0][:200]))
            )
    return flagged, planted, flags


@lru_cache(maxsize=2048)
def instruction_sentences(text: str) -> tuple[str, ...]:
    """The sentences of a passage's text that address an assistant (INSTRUCTION, INJECTION).

    Memoised by text: the same chunks come back for many questions, and scanning five of
    them cost about 0.7 ms of CPU a request (py-spy, issue 17). 2,048 entries of chunk
    text (about 1.2 KB each at the default 300 tokens) hold about 3 MB per process."""
    if not (INSTRUCTION.search(text) or INJECTION.search(text)):
        return ()  # the common case: one scan of the passage, no sentence split
    return tuple(s for s in _SENTENCE.split(text) if INSTRUCTION.search(s) or INJECTION.search(s))


def upstream_question(settings: Settings, question: str) -> str:
    """The question as sent upstream: with emails, phone and card numbers masked when
    GUARDRAIL_PII_REDACTION is on (the stored question is the user's own)."""
    return redact(question) if settings.guardrail_pii_redaction else question


class HasSources(Protocol):
    passages: list[Passage]
    planted: list[str]


def output_guard(settings: Settings, prepared: HasSources) -> OutputGuard | None:
    """The output checks for one answer, or None when every output rule is off."""
    modes = settings.guardrail_modes
    if all(modes.get(rule, "on") == "off" for rule in OUTPUT_RULES):
        return None
    return OutputGuard(
        system_prompt=system_prompt(bot_name=settings.bot_name),
        n_sources=len(prepared.passages),
        planted=prepared.planted,
        sources=[p.text for p in prepared.passages],
        modes=modes,
    )
