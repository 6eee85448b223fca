"""The route's backstop after an answer, called directly against the real PostgreSQL.

`/api/chat` runs `release_unused` after every response, for an answer whose stream never
started (the route now starts every stream before it makes the response, and the response
closes it: app/routes/chat.py). Once the stream has started it settles the call itself, so
the backstop must not take a database connection: at 1,000 answers ending together those
connections are the ones the answers' own settling waits for (issue 17: a drained pool
lost answers, and the backstop's pool timeout, raised after the response had started,
dropped the connection).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.caps.chain import Admission, admit, release_unused
from app.caps.early import EarlyReservation
from app.chat import stream_answer
from app.db import make_async_engine
from app.prepare import PreparedChat
from app.services import Services
from tests.direct import direct_services, prepared_question

MINI = "gpt-4o-mini"
QUESTION = "What port does the server listen on?"


def _prepared(user: uuid.UUID) -> PreparedChat:
    """An answer made without the model (nothing retrieved): no upstream is needed."""
    return prepared_question(user, QUESTION, MINI, without_model=True)


async def _admit(services: Services, user: uuid.UUID) -> Admission[PreparedChat]:
    """A real admission (rate limit, lease, $0 reservation) of an answer without the model."""
    prepared = _prepared(user)

    async def prepare(_early: EarlyReservation) -> PreparedChat:
        return prepared

    return await admit(services, user_id=user, message=QUESTION, max_tokens=50, prepare=prepare)


@asynccontextmanager
async def _drained(services: Services, db_url: str) -> AsyncIterator[Services]:
    """`services` on a pool of one connection, held here; a checkout gives up after 0.2 s."""
    engine = make_async_engine(db_url, pool_size=1, max_overflow=0, pool_timeout_s=0.2)
    try:
        async with engine.connect():
            yield dataclasses.replace(services, sessions=async_sessionmaker(engine))
    finally:
        await engine.dispose()


def _settled(db_engine: Engine, reservation: uuid.UUID) -> bool:
    with db_engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT settled_at IS NOT NULL FROM reservations WHERE id = :id"),
                {"id": reservation},
            ).scalar_one()
        )


def test_after_a_streamed_answer_the_backstop_needs_no_database_connection(
    db_url: str, db_engine: Engine
) -> None:
    async def go() -> tuple[list[str], uuid.UUID]:
        async with direct_services(db_url, llm_model=MINI) as services:
            admission = await _admit(services, uuid.uuid4())
            span = services.tracer.start_span("chat")
            names = [e.name async for e in stream_answer(services, admission, span=span)]
            async with _drained(services, db_url) as drained:
                await release_unused(drained, admission)  # raised TimeoutError before
            return names, admission.reservation.id

    names, reservation = asyncio.run(go())
    assert names[-1] == "done"
    assert _settled(db_engine, reservation)  # by the stream: the backstop had nothing to do


def test_an_admission_whose_stream_never_started_is_still_given_back(
    db_url: str, db_engine: Engine
) -> None:
    async def go() -> uuid.UUID:
        async with direct_services(db_url, llm_model=MINI) as services:
            admission = await _admit(services, uuid.uuid4())
            stream = stream_answer(services, admission, span=services.tracer.start_span("c"))
            await stream.aclose()  # the client left before the first event
            await release_unused(services, admission)
            return admission.reservation.id

    assert _settled(db_engine, asyncio.run(go()))


def test_a_drained_pool_does_not_keep_the_stream_slot_of_an_unused_admission(
    db_url: str,
) -> None:
    user = uuid.uuid4()

    async def go() -> None:
        async with direct_services(db_url, llm_model=MINI, max_concurrent_streams=1) as services:
            admission = await _admit(services, user)
            async with _drained(services, db_url) as drained:
                with pytest.raises(SQLAlchemyTimeout):
                    await release_unused(drained, admission)
            # The one stream slot is free again: the next admission is not refused (429).
            await release_unused(services, await _admit(services, user))

    asyncio.run(go())


class _Said(logging.Handler):
    """Sets `event` when a record's message contains `words`."""

    def __init__(self, words: str, event: asyncio.Event) -> None:
        super().__init__(logging.WARNING)
        self.words, self.event = words, event

    def emit(self, record: logging.LogRecord) -> None:
        if self.words in record.getMessage():
            self.event.set()


def test_a_drained_pool_delays_an_answers_settlement_but_does_not_lose_it(
    db_url: str, db_engine: Engine
) -> None:
    async def go() -> tuple[list[str], uuid.UUID]:
        async with direct_services(db_url, llm_model=MINI) as services:
            admission = await _admit(services, uuid.uuid4())
            engine = make_async_engine(db_url, pool_size=1, max_overflow=0, pool_timeout_s=0.2)
            held = await engine.connect()  # the pool's one connection, as a burst holds it
            waiting = asyncio.Event()
            said = _Said("waits for a database connection", waiting)
            logging.getLogger("ragship.chat").addHandler(said)

            async def give_back() -> None:  # once the settlement has timed out and waits
                await waiting.wait()
                await held.close()

            freeing = asyncio.create_task(give_back())
            try:
                drained = dataclasses.replace(
                    services, sessions=async_sessionmaker(engine, expire_on_commit=False)
                )
                span = services.tracer.start_span("chat")
                names = [e.name async for e in stream_answer(drained, admission, span=span)]
            finally:
                logging.getLogger("ragship.chat").removeHandler(said)
                freeing.cancel()
                await held.close()
                await engine.dispose()
            assert waiting.is_set()  # it did time out once before it settled
            return names, admission.reservation.id

    names, reservation = asyncio.run(go())
    assert names[-1] == "done", names  # not "error": the answer was saved
    assert _settled(db_engine, reservation)
