"""Where an answer comes from, and what is kept of it: the response cache, the local
"I don't know" when nothing was retrieved, or the model; a live first-turn answer that
ended well is cached for the next asker (docs/context.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING

from app.cache.replay import replay
from app.cache.responses import store as store_answer
from app.caps.chain import Admission
from app.conversations import hold_conversation
from app.db import session_scope
from app.llm.client import Finished, TextDelta
from app.observability.redact import redact
from app.rag.no_context import answer_locally
from app.services import Services
from app.settle import Outcome

if TYPE_CHECKING:
    from app.prepare import PreparedChat


def answer_source(
    services: Services, admission: Admission[PreparedChat]
) -> AsyncIterator[TextDelta | Finished]:
    """Where the answer comes from: the cache, the local "I don't know" (nothing was
    retrieved), or the model."""
    prepared = admission.prepared
    if prepared.cached is not None:
        return replay(prepared.cached.answer, prepared.route.model)
    if prepared.without_model:  # nothing was retrieved
        return answer_locally(prepared.route.model)
    return services.llm.stream_chat(
        prepared.messages,
        max_tokens=admission.max_tokens,
        temperature=services.settings.llm_temperature,
        model=prepared.route.model,
    )


async def remember_answer(
    services: Services, prepared: PreparedChat, outcome: Outcome, cost: Decimal
) -> None:
    """Cache a live first-turn answer that ended well and that no guardrail flagged.

    Never cached: an answer the model cut at its token limit (a caller's small
    ``max_tokens`` must not become everyone's answer), and the answer to a question holding
    personal data the call log would mask (an email, a phone or card number, a key): a
    similar question from someone else must not be served it. The entry belongs to its
    conversation: deleting the conversation deletes it."""
    finished = outcome.finished
    if (
        prepared.cache_key is None
        or prepared.cached is not None
        or outcome.status != "ok"
        or outcome.flags
        or prepared.triggers
        or finished is None
        or finished.reason != "stop"
        or redact(prepared.question) != prepared.question
    ):
        return
    async with session_scope(services.sessions) as session:
        # Deleted while it streamed: its answer is not kept anywhere.
        if not await hold_conversation(session, conversation_id=prepared.conversation_id):
            return
        await store_answer(
            session,
            key=prepared.cache_key,
            conversation_id=prepared.conversation_id,
            question=prepared.question,
            embedding=prepared.embedding,
            answer="".join(outcome.parts),
            passages=prepared.passages,
            cost_usd=cost,
            ttl_s=services.settings.response_cache_ttl_s,
        )
