"""Preparing an answer: everything it needs, read before the cap chain admits the call.

`prepare_chat` screens the question, embeds it, reads the conversation (its running summary
and the turns after it), looks the question up in the response cache, retrieves passages,
fits all of it into the model's context budget and builds the prompt. Given an
`EarlyReservation`, it sends it (with the question's writes) last in the search's round
trip. It holds no database connection afterwards: the cap chain (`app/caps/chain.py`)
admits the call with the result, and `app/chat.py` streams it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from app.cache.responses import (
    CachedAnswer,
    CacheKey,
    CacheKeyParts,
    looked_up,
    lookup_statement,
)
from app.caps.early import EarlyReservation
from app.conversations import (
    conversation_summary,
    unsummarised_history,
)
from app.db import Rows, Runner, Statement, autocommit_connection, pipelined
from app.guardrails.chain import (
    Trigger,
    screen_input,
    screen_sources,
    upstream_question,
)
from app.llm.routing import Route, choose_route
from app.question import Question, question_writes
from app.rag.context_budget import (
    ContextBudget,
    budget_for,
    check_fits,
    fit_history,
    fit_passages,
    fit_summary,
    window_of,
)
from app.rag.corpus_fit import CorpusFit
from app.rag.no_context import answers_locally
from app.rag.prompt import build_messages, new_boundary, source_segments
from app.rag.prompt_bound import prompt_bound
from app.rag.prompt_tokens import user_tokens
from app.rag.query_embedding import StartedEmbedding
from app.rag.retrieve import Passage, configured_statements, passages_of, vector_text
from app.rag.summarise import MAX_UNSUMMARISED, Turn, fold, turns_to_fold
from app.services import Services
from app.settings import Settings
from app.tokens import count_message_tokens


@dataclass(frozen=True)
class ChatEvent:
    name: str
    data: dict[str, Any]


@dataclass
class PreparedChat:
    user_id: uuid.UUID
    conversation_id: uuid.UUID
    is_new_conversation: bool
    question: str
    trace_id: str
    passages: list[Passage]
    messages: list[dict[str, str]]
    route: Route  # arm, model and prompt version (app/llm/routing.py)
    planted: list[str] = field(default_factory=list)  # instruction sentences in sources
    triggers: list[Trigger] = field(default_factory=list)  # guardrail flags so far
    embedding: list[float] = field(default_factory=list)  # the question's
    cache_key: CacheKey | None = None  # set when the response cache applies (first turns)
    cached: CachedAnswer | None = None  # a cache hit: streamed instead of calling the model
    # Answered without the model (a cache hit, or "I don't know" with nothing retrieved):
    # nothing is charged, and an exact reservation is $0 (docs/caps.md).
    without_model: bool = False
    # The prompt's tokens as `check_fits` counted them; None: counted on first use.
    counted_prompt_tokens: int | None = field(default=None, repr=False)

    @property
    def models(self) -> tuple[str, ...]:
        """The models that may answer (the reservation covers the dearest)."""
        return self.route.models

    @property
    def prompt_tokens(self) -> int:
        """`messages` in prompt tokens (app/tokens.py), counted once: the reservation and
        the charge of a stream without reported usage read it. `prepare_chat` sets it
        from the context check's count (app/rag/prompt_tokens.py)."""
        if self.counted_prompt_tokens is None:
            self.counted_prompt_tokens = count_message_tokens(self.messages)
        return self.counted_prompt_tokens


async def search_or_cached(
    session: Runner,
    settings: Settings,
    *,
    question: str,
    embedding: list[float],
    cache: CacheKeyParts | None,
    fit: CorpusFit,
    also: tuple[Statement, Callable[[Rows], None]] | None = None,
) -> tuple[CacheKey | None, CachedAnswer | None, list[Passage]]:
    """The question's passages, and with `cache` (a first turn, RESPONSE_CACHE on) its key
    and cached answer (None on a miss; the passages are then the answer's). The lookup,
    which reads the corpus version with the entry, and the search leave in one round trip
    (`pipelined`): on a miss, as most first turns are, the search was needed; a hit wasted
    its PostgreSQL time, not a round trip. Sent one at a time, the version, the lookup and
    the search were three. `fit`'s check rides along too when due (`CorpusFit`). ``also``: a
    statement sent last (the early reservation's: the server skips it when a search
    statement fails) and what reads its rows. Raises sqlalchemy.exc.DBAPIError as any
    statement does, and what ``also``'s reader raises."""
    vector = vector_text(embedding)  # made once for both statements
    searching = configured_statements(settings, query=question, embedding=vector, fit=fit)
    looking = (
        []
        if cache is None
        else [
            lookup_statement(
                cache,
                question=question,
                embedding=vector,
                threshold=settings.response_cache_similarity,
            )
        ]
    )
    sent = [*looking, *searching, *([also[0]] if also else [])]
    # With a rider (the early reservation) the answers are read to the end even when the
    # request is cancelled meanwhile: its outcome must be known for it to be given back.
    with anyio.CancelScope(shield=also is not None):
        rows = await pipelined(session, sent, commit=False)
    if also is not None:
        also[1](rows.pop())
    if fit.sent(searching):
        fit.saw(rows[len(looking)])
    found = rows[-1]
    if cache is None:
        return None, None, passages_of(found)
    key, cached = await looked_up(session, cache, rows[0])
    return key, cached, cached.passages if cached else passages_of(found)


def _early(
    services: Services,
    early: EarlyReservation,
    asked: Question,
    route: Route,
    budget: ContextBudget,
    turns: list[Turn],
    summary: str | None,
) -> tuple[Statement, Callable[[Rows], None]]:
    """``early``'s statement, for the bound of the prompt (`prompt_bound`) of ``asked``
    with these unfolded ``turns`` and stored ``summary``, storing the question when
    allowed; and what reads its rows (`EarlyReservation.saw`)."""
    settings = services.settings
    bound = prompt_bound(
        settings,
        budget,
        question=upstream_question(settings, asked.question),
        history=[{"role": r, "content": c} for _, r, c in turns],
        summary=summary,
        prompt_version=route.prompt_version,
    )
    writes = question_writes(asked)
    statement = early.statement(services, models=route.models, input_tokens=bound, also=writes)
    return statement, early.saw


async def prepare_chat(
    services: Services,
    *,
    user_id: uuid.UUID,
    question: str,
    conversation_id: uuid.UUID | None,
    trace_id: str,
    early: EarlyReservation | None = None,
    started: StartedEmbedding | None = None,
) -> PreparedChat:
    """Everything the answer needs (module docstring). With ``early``, the reservation and
    the question's writes ride in the search's round trip (app/caps/early.py). ``started``:
    the question's embedding when the route began it before the sign-in
    (app/rag/query_embedding.py); used when its text is the question's, else the question
    is embedded here. Raises
    `GuardrailBlocked`, `CapRefused` (413, the prompt past the window),
    `ConversationNotFound`, sqlalchemy.exc.DBAPIError."""
    settings = services.settings
    is_new = conversation_id is None
    conversation = conversation_id or uuid.uuid4()
    route = choose_route(settings, user_id=user_id, question=question, first_turn=is_new)
    if started is None or started.text != question:
        started = services.query_embeddings.start(services.embedder, question)
    embedding = await started.vector()
    triggers = await screen_input(  # raises GuardrailBlocked
        services, user_id=user_id, trace_id=trace_id, question=question, embedding=embedding
    )
    window = window_of(services.prices, route.models)
    budget = budget_for(settings, window=window, max_output=settings.llm_max_tokens)
    # Reads, each on its own (read committed gave each statement its own snapshot anyway):
    # no BEGIN and COMMIT round trips, and no ORM session; the search (and a first turn's
    # cache lookup) is one round trip.
    async with autocommit_connection(services.sessions) as session:
        turns: list[Turn] = []
        summary: str | None = None
        if conversation_id is not None:
            stored_summary, summarised_through = await conversation_summary(
                session, conversation_id=conversation_id, owner=str(user_id)
            )
        if conversation_id is not None and settings.history_messages:
            summary = stored_summary
            turns = await unsummarised_history(
                session,
                conversation_id=conversation_id,
                after=summarised_through,
                limit=MAX_UNSUMMARISED,
            )
        folded = turns_to_fold(
            turns,
            budget=budget,
            threshold=settings.context_summary_threshold,
            max_messages=settings.history_messages,
        )
        reserving = None
        if early is not None and not folded:  # a fold reserves first: then the exact one
            asked = Question(user_id, conversation, is_new, question)
            reserving = _early(services, early, asked, route, budget, turns, summary)
        parts = None
        if settings.response_cache and conversation_id is None and not triggers:
            # The arm is in the key: a canary answer is never served to the main side.
            parts = CacheKeyParts(route.prompt_version, route.model, route.arm)
        cache_key, cached, passages = await search_or_cached(
            session,
            settings,
            question=question,
            embedding=embedding,
            cache=parts,
            fit=services.corpus_fit,
            also=reserving,
        )
    passages = fit_passages(passages, budget.passages)
    if folded and conversation_id is not None:
        summary = (
            await fold(
                services,
                user_id=user_id,
                conversation_id=conversation_id,
                trace_id=trace_id,
                summary=summary,
                older=turns[:folded],
                max_tokens=min(settings.llm_max_tokens_summary, budget.summary),
            )
            or summary
        )
        turns = turns[folded:]
    history = fit_history([{"role": r, "content": c} for _, r, c in turns], budget.history)
    flagged, planted, source_flags = screen_sources(settings, passages)
    asking, boundary = upstream_question(settings, question), new_boundary()
    messages = build_messages(
        question=asking,
        passages=passages,
        history=history,
        boundary=boundary,
        flagged=flagged,
        summary=fit_summary(summary, budget.summary),
        bot_name=settings.bot_name,
        prompt_version=route.prompt_version,
    )
    segments = source_segments(passages, boundary=boundary, flagged=flagged)
    last = user_tokens(segments, asking)  # each source's text counted once per process
    prompt_tokens = check_fits(messages, budget, last=last)  # raises CapRefused (413)
    return PreparedChat(
        user_id=user_id,
        conversation_id=conversation,
        is_new_conversation=is_new,
        question=question,
        trace_id=trace_id,
        passages=passages,
        messages=messages,
        route=route,
        planted=planted,
        triggers=triggers + source_flags,
        embedding=embedding,
        cache_key=cache_key,
        cached=cached,
        without_model=cached is not None
        or answers_locally(enabled=settings.answer_without_sources_locally, passages=passages),
        counted_prompt_tokens=prompt_tokens,
    )
