"""The early reservation (app/caps/early.py) through `admit` and the real `prepare_chat`, on
the real PostgreSQL with the bundled docs: the reservation and the question ride in the
search's round trip when the bound covers the prompt; otherwise it is given back (nothing
stays reserved or stored) and the exact reservation decides, as before."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.caps import budget
from app.caps.chain import Admission, admit, release_unused
from app.caps.early import EARLY, EXACT
from app.caps.refusal import GLOBAL_DAILY, REQUEST_COST, CapRefused
from app.db import make_sync_engine
from app.guardrails.chain import upstream_question
from app.prepare import PreparedChat, prepare_chat
from app.question import question_writes
from app.rag.context_budget import CONTEXT_LAYER, budget_for, window_of
from app.rag.embedder import Embedder
from app.rag.prompt_bound import prompt_bound
from app.services import Services
from app.settings import LOCAL_MODEL_ID
from app.tokens import count_message_tokens
from evals.cases import load_cases
from tests.conftest import scalar
from tests.direct import direct_services
from tests.libpq_trace import flights, traced_checkouts

MODEL = "gpt-4o-mini"  # priced: a question reserves more than $0
QUESTION = "How do I ingest PDF files?"
RESERVE_HEAD = "WITH r AS"  # a new conversation's reservation statement (app/caps/budget.py)


@asynccontextmanager
async def _services(
    db_url: str, embedder: Embedder, **settings: object
) -> AsyncIterator[tuple[Services, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with direct_services(
        db_url, **{"llm_model": MODEL, "rate_limit_requests": 1000, **settings}
    ) as services:
        yield (
            dataclasses.replace(services, embedder=embedder, tracer=provider.get_tracer("t")),
            exporter,
        )


async def _ask(
    services: Services, user: uuid.UUID, conversation: uuid.UUID | None = None
) -> Admission[PreparedChat]:
    return await admit(
        services,
        user_id=user,
        message=QUESTION,
        max_tokens=None,
        prepare=lambda early: prepare_chat(
            services,
            user_id=user,
            question=QUESTION,
            conversation_id=conversation,
            trace_id=uuid.uuid4().hex,
            early=early,
        ),
        with_reservation=question_writes,
    )


def _exact(services: Services, admission: Admission[PreparedChat]) -> Decimal:
    """What the chain reserves exactly for this admission's prompt."""
    prepared = admission.prepared
    return services.prices.max_cost(
        prepared.models, input_tokens=prepared.prompt_tokens, max_output_tokens=admission.max_tokens
    )


def _kind(exporter: InMemorySpanExporter) -> list[Any]:
    spans = exporter.get_finished_spans()
    return [
        (s.attributes or {}).get("ragship.reservation") for s in spans if s.name == "caps.reserve"
    ]


def _stored(engine: Engine, user: uuid.UUID) -> tuple[int, int, int, tuple[Decimal, Decimal]]:
    """(conversations, messages, unsettled reservations, (spent, reserved) today) of ``user``."""
    day, _ = budget.periods()
    sql = (
        "SELECT (SELECT count(*) FROM conversations WHERE owner = :o), "
        "(SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        " WHERE c.owner = :o), "
        "(SELECT count(*) FROM reservations WHERE user_id = :u AND settled_at IS NULL), "
        "(SELECT spent_usd FROM spend_counters WHERE scope = :s AND period = :d), "
        "(SELECT reserved_usd FROM spend_counters WHERE scope = :s AND period = :d)"
    )
    with engine.connect() as conn:
        row = conn.execute(
            text(sql), {"o": str(user), "u": user, "s": budget.user_scope(user), "d": day}
        ).one()
    return row[0], row[1], row[2], (row[3], row[4])


def test_an_answer_reserves_in_the_searchs_round_trip_for_a_bound_that_covers_it(
    db_url: str, db_engine: Engine, embedder: Embedder
) -> None:
    user = uuid.uuid4()

    async def go(sink: Any) -> tuple[Admission[PreparedChat], Decimal, list[Any]]:
        async with _services(db_url, embedder) as (services, exporter):
            engine: AsyncEngine = services.sessions.kw["bind"]
            with traced_checkouts(engine, sink):
                admission = await _ask(services, user)
            exact = _exact(services, admission)
            assert _stored(db_engine, user)[:3] == (1, 1, 1)  # held, question stored
            await release_unused(services, admission)
            return admission, exact, _kind(exporter)

    with tempfile.NamedTemporaryFile("w+") as sink:
        admission, exact, kinds = asyncio.run(go(sink))
        sink.seek(0)
        lines = sink.read().splitlines()
    sent = flights(lines)
    reserving = [heads for heads in sent if RESERVE_HEAD in heads]
    # One reservation statement, last in the flight that carries the search's statements.
    assert len(reserving) == 1 and reserving[0][-1] == RESERVE_HEAD and len(reserving[0]) >= 3
    assert sum(heads.count(RESERVE_HEAD) for heads in sent) == 1
    assert kinds == [EARLY]
    assert admission.reservation.amount >= exact > 0
    assert _stored(db_engine, user) == (1, 1, 0, (Decimal(0), Decimal(0)))


def test_a_prompt_past_the_bound_is_reserved_again_exactly_and_stored_once(
    db_url: str, db_engine: Engine, embedder: Embedder
) -> None:
    """CHUNK_TOKENS far below the stored chunks' size makes the bound too small."""
    user = uuid.uuid4()

    async def go() -> tuple[Admission[PreparedChat], Decimal, list[Any]]:
        async with _services(db_url, embedder, chunk_tokens=32, chunk_overlap=0) as (
            services,
            exporter,
        ):
            admission = await _ask(services, user)
            exact = _exact(services, admission)
            assert _stored(db_engine, user)[:3] == (1, 1, 1)  # the early one was given back
            await release_unused(services, admission)
            return admission, exact, _kind(exporter)

    admission, exact, kinds = asyncio.run(go())
    assert kinds == [EXACT]
    assert admission.reservation.amount == exact
    assert _stored(db_engine, user) == (1, 1, 0, (Decimal(0), Decimal(0)))


@pytest.mark.parametrize(
    ("settings", "layer", "status"),
    [
        ({"max_request_cost_usd": "0.0001"}, REQUEST_COST, 413),  # priced after retrieval
        ({"llm_context_window": 300, "llm_max_tokens": 100}, CONTEXT_LAYER, 413),  # prepare's
    ],
)
def test_a_refusal_after_the_early_reservation_gives_it_back_and_stores_nothing(
    db_url: str,
    db_engine: Engine,
    embedder: Embedder,
    settings: dict[str, object],
    layer: str,
    status: int,
) -> None:
    user, asker = uuid.uuid4(), uuid.uuid4()

    async def go() -> tuple[CapRefused, CapRefused]:
        async with _services(db_url, embedder, **settings) as (services, _):
            with pytest.raises(CapRefused) as first:
                await _ask(services, user)
        async with _services(db_url, embedder) as (services, _):  # a follow-up, refused
            admission = await _ask(services, asker)
            await release_unused(services, admission)
        async with _services(db_url, embedder, **settings) as (services, _):
            with pytest.raises(CapRefused) as follow_up:
                await _ask(services, asker, admission.prepared.conversation_id)
        return first.value, follow_up.value

    first, follow_up = asyncio.run(go())
    assert (first.layer, first.status) == (follow_up.layer, follow_up.status) == (layer, status)
    # Each refused request was reserved early, then given back: a reservation settled with
    # no call, holding more than $0 (the asker's first turn, released unused, is another).
    for who, given_back in ((user, 1), (asker, 2)):
        sql = (
            "SELECT count(*) FROM reservations WHERE user_id = :u AND settled_at IS NOT NULL "
            "AND amount_usd > 0 AND id NOT IN (SELECT reservation_id FROM llm_calls "
            "WHERE reservation_id IS NOT NULL)"
        )
        assert scalar(db_engine, sql, u=who) == given_back
    assert _stored(db_engine, user) == (0, 0, 0, (Decimal(0), Decimal(0)))
    assert _stored(db_engine, asker) == (1, 1, 0, (Decimal(0), Decimal(0)))  # first turn only


def test_a_cap_with_room_for_the_exact_amount_but_not_the_bound_admits(
    db_url: str, db_engine: Engine, embedder: Embedder
) -> None:
    probe, user = uuid.uuid4(), uuid.uuid4()

    async def go() -> tuple[Decimal, Decimal, Admission[PreparedChat], Decimal, list[Any]]:
        async with _services(db_url, embedder) as (services, _):
            measured = await _ask(services, probe)
            bound, exact = measured.reservation.amount, _exact(services, measured)
            await release_unused(services, measured)
        room = (bound + exact) / 2
        async with _services(db_url, embedder, user_daily_cap_usd=str(room)) as (services, spans):
            admission = await _ask(services, user)
            await release_unused(services, admission)
            return bound, exact, admission, _exact(services, admission), _kind(spans)

    bound, exact, admission, admission_exact, kinds = asyncio.run(go())
    assert bound > exact
    # The exact amount of this admission's own prompt (its source markers' random code
    # may count a token more or less than the probe's).
    assert kinds == [EXACT] and admission.reservation.amount == admission_exact
    assert _stored(db_engine, user) == (1, 1, 0, (Decimal(0), Decimal(0)))


def test_concurrent_early_reservations_never_pass_the_global_cap(
    docs_database: Any, embedder: Embedder
) -> None:
    """12 users at once against a global daily cap with room for 3.5 bounds: every
    admission holds its reservation until all have answered, and the global counter's
    reserved amount is exactly what the admitted hold, within the cap; the refused store
    nothing."""
    url = docs_database()
    engine = make_sync_engine(url)
    users = [uuid.uuid4() for _ in range(12)]

    async def go() -> tuple[list[Any], Decimal, Decimal]:
        async with _services(url, embedder) as (services, _):
            probe = await _ask(services, uuid.uuid4())
            bound = probe.reservation.amount
            await release_unused(services, probe)
        cap = bound * Decimal("3.5")
        async with _services(url, embedder, global_daily_cap_usd=str(cap)) as (services, _):
            outcomes = await asyncio.gather(
                *(_ask(services, u) for u in users), return_exceptions=True
            )
            day, _ = budget.periods()
            with engine.connect() as conn:
                held = conn.execute(
                    text("SELECT reserved_usd FROM ragship_counter('global', :d)"), {"d": day}
                ).scalar_one()
            for outcome in outcomes:
                if isinstance(outcome, Admission):
                    await release_unused(services, outcome)
        return outcomes, Decimal(held), cap

    try:
        outcomes, held, cap = asyncio.run(go())
        admitted = [o for o in outcomes if isinstance(o, Admission)]
        refused = [o for o in outcomes if not isinstance(o, Admission)]
        assert len(admitted) >= 3
        assert all(isinstance(o, CapRefused) and o.layer == GLOBAL_DAILY for o in refused)
        assert held == sum(a.reservation.amount for a in admitted) <= cap
        stored = [_stored(engine, u)[:2] for u in users]
        assert sorted(stored) == sorted([(0, 0)] * len(refused) + [(1, 1)] * len(admitted))
        # Nothing stays held: the admitted were released, the refused gave everything back.
        assert all(_stored(engine, u)[2:] == (0, (Decimal(0), Decimal(0))) for u in users)
    finally:
        engine.dispose()


@pytest.mark.parametrize("model", [MODEL, LOCAL_MODEL_ID])  # windows of 128,000 and 8,192
def test_the_bound_covers_every_eval_questions_prompt_on_the_bundled_docs(
    db_url: str, embedder: Embedder, model: str
) -> None:
    """`prompt_bound` against the prompt `prepare_chat` really builds, for every first-turn
    question of the eval set (evals/cases.toml) the guardrails let through, on the bundled docs, at the default
    settings: never below it (else those answers would reserve twice)."""
    cases = load_cases()
    questions = sorted({c.question for c in cases if not c.history and c.expect != "refuse"})

    async def go() -> list[tuple[str, int, int, Decimal, Decimal]]:
        async with _services(db_url, embedder, llm_model=model) as (services, _):
            settings, rows = services.settings, []
            for question in questions:
                prepared = await prepare_chat(
                    services,
                    user_id=uuid.uuid4(),
                    question=question,
                    conversation_id=None,
                    trace_id=uuid.uuid4().hex,
                )
                # The check's count in segments (app/rag/prompt_tokens.py) is the whole one.
                assert prepared.prompt_tokens == count_message_tokens(prepared.messages)
                window = window_of(services.prices, prepared.models)
                bound = prompt_bound(
                    settings,
                    budget_for(settings, window=window, max_output=settings.llm_max_tokens),
                    question=upstream_question(settings, question),
                    history=[],
                    summary=None,
                    prompt_version=prepared.route.prompt_version,
                )
                price = functools.partial(
                    services.prices.max_cost,
                    prepared.models,
                    max_output_tokens=settings.llm_max_tokens,
                )
                rows.append(
                    (
                        question,
                        bound,
                        prepared.prompt_tokens,
                        price(input_tokens=bound),
                        price(input_tokens=prepared.prompt_tokens),
                    )
                )
            return rows

    rows = asyncio.run(go())
    assert len(rows) >= 20
    assert [q for q, bound, tokens, *_ in rows if bound < tokens] == []
    ratios = sorted(early / exact for *_, early, exact in rows if exact)
    print(f"{model}: early / exact amount over {len(ratios)} questions: min {ratios[0]:.2f}, "
          f"median {ratios[len(ratios) // 2]:.2f}, max {ratios[-1]:.2f}")  # fmt: skip
