"""The question rides in the reservation's statement (app/question.py), against the real
PostgreSQL through the cap chain's `admit`: an admitted request stores its conversation
(when new) and its message in that one statement, a refused one stores nothing, a
follow-up moves the conversation's `updated_at`, and a follow-up waits for its
conversation's row before it takes any counter's row (the lock order of settling)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.caps import budget
from app.caps.chain import Admission, admit, release_unused
from app.caps.early import EarlyReservation
from app.caps.refusal import GLOBAL_DAILY, CapRefused
from app.conversations import ConversationNotFound
from app.db import make_sync_engine
from app.llm.routing import ARM_MAIN, Route
from app.prepare import PreparedChat
from app.question import question_writes
from app.rag.prompt import PROMPT_VERSION
from app.services import Services
from tests.conftest import eventually, scalar
from tests.direct import direct_services
from tests.libpq_trace import sent_statements, traced_checkouts

MODEL = "gpt-4o-mini"  # priced: a question reserves more than $0


def _prepared(
    user: uuid.UUID,
    conversation: uuid.UUID,
    *,
    new: bool,
    question: str,
    without_model: bool = False,
) -> PreparedChat:
    return PreparedChat(
        user_id=user,
        conversation_id=conversation,
        is_new_conversation=new,
        question=question,
        trace_id=uuid.uuid4().hex,
        passages=[],
        messages=[{"role": "user", "content": question}],
        route=Route(ARM_MAIN, MODEL, PROMPT_VERSION, (MODEL,)),
        without_model=without_model,
    )


async def _admit(services: Services, prepared: PreparedChat) -> Admission[PreparedChat]:
    async def prepare(_early: EarlyReservation) -> PreparedChat:
        return prepared

    return await admit(
        services,
        user_id=prepared.user_id,
        message=prepared.question,
        max_tokens=None,
        prepare=prepare,
        with_reservation=question_writes,
    )


def _admit_once(db_url: str, prepared: PreparedChat, **settings: object) -> tuple[Any, list[str]]:
    """Admit ``prepared`` (then give the admission back); (the reservation or the exception
    raised, the SQL statements admission sent, each by its first three words, as libpq's
    trace of the connections shows them: the reservation goes to psycopg as it is)."""

    async def go(sink: Any) -> Any:
        async with direct_services(db_url, llm_model=MODEL, **settings) as services:
            engine: AsyncEngine = services.sessions.kw["bind"]
            try:
                with traced_checkouts(engine, sink):
                    admission = await _admit(services, prepared)
            except Exception as exc:  # asserted by the caller
                return exc
            await release_unused(services, admission)
            await engine.dispose()
            return admission.reservation

    with tempfile.NamedTemporaryFile("w+") as sink:
        outcome = asyncio.run(go(sink))
        sink.seek(0)
        sent = sent_statements(sink.read().splitlines())
    return outcome, sent


def _rows(engine: Engine, conversation: uuid.UUID) -> tuple[int, int]:
    """(conversations, messages) stored for this conversation id."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM conversations WHERE id = :c), "
                "(SELECT count(*) FROM messages WHERE conversation_id = :c)"
            ),
            {"c": conversation},
        ).one()
    return row[0], row[1]


def test_an_admitted_question_is_stored_in_the_reservations_one_statement(
    db_url: str, db_engine: Engine
) -> None:
    user, conversation = uuid.uuid4(), uuid.uuid4()
    first = _prepared(user, conversation, new=True, question="  How do I ingest? ")
    reservation, sent = _admit_once(db_url, first)
    assert isinstance(reservation, budget.Reservation) and reservation.amount > 0
    # one round trip: the reservation, the conversation and the message (its foreign key to
    # the conversation inserted by the same statement is checked at the statement's end)
    assert sent == ["WITH r AS"]
    title = "SELECT title FROM conversations WHERE id = :c"
    assert scalar(db_engine, title, c=conversation) == "How do I ingest?"
    stored = "SELECT role || ':' || content FROM messages WHERE conversation_id = :c"
    assert scalar(db_engine, stored, c=conversation) == "user:  How do I ingest? "
    held = "SELECT amount_usd FROM reservations WHERE id = :r"
    assert scalar(db_engine, held, r=reservation.id) == reservation.amount

    # A follow-up answered without the model (a cache hit, a local "I don't know") reserves
    # $0 and is stored all the same; it moves the conversation's updated_at.
    updated = "SELECT updated_at FROM conversations WHERE id = :c"
    before = scalar(db_engine, updated, c=conversation)
    follow_up = _prepared(user, conversation, new=False, question="And PDFs?", without_model=True)
    reservation, sent = _admit_once(db_url, follow_up)
    assert isinstance(reservation, budget.Reservation) and reservation.amount == 0
    assert sent == ["WITH held AS"]
    assert scalar(db_engine, updated, c=conversation) > before  # type: ignore[operator]
    assert _rows(db_engine, conversation) == (1, 2)
    last = "SELECT content FROM messages WHERE conversation_id = :c ORDER BY id DESC LIMIT 1"
    assert scalar(db_engine, last, c=conversation) == "And PDFs?"


def test_a_refused_question_stores_nothing(db_url: str, db_engine: Engine) -> None:
    """The global daily cap refuses: no conversation, no message, no `updated_at` move."""
    user, conversation = uuid.uuid4(), uuid.uuid4()
    reservation, _ = _admit_once(db_url, _prepared(user, conversation, new=True, question="Hi"))
    assert isinstance(reservation, budget.Reservation)
    updated = "SELECT updated_at FROM conversations WHERE id = :c"
    before = scalar(db_engine, updated, c=conversation)
    tiny = {"global_daily_cap_usd": "0.000001"}  # less than any priced question

    refused, _ = _admit_once(
        db_url, _prepared(user, conversation, new=False, question="Again?"), **tiny
    )
    assert isinstance(refused, CapRefused) and refused.layer == GLOBAL_DAILY
    assert _rows(db_engine, conversation) == (1, 1)
    assert scalar(db_engine, updated, c=conversation) == before

    fresh = uuid.uuid4()
    refused, _ = _admit_once(db_url, _prepared(user, fresh, new=True, question="New?"), **tiny)
    assert isinstance(refused, CapRefused) and refused.layer == GLOBAL_DAILY
    assert _rows(db_engine, fresh) == (0, 0)


def test_a_conversation_deleted_before_the_reservation_is_not_found_and_reserves_nothing(
    db_url: str, db_engine: Engine
) -> None:
    """A follow-up whose conversation is gone (deleted after `prepare_chat` read it): its
    lock locks no row, so the reservation is not attempted: `ConversationNotFound` (the
    route's 404), in the one statement, with nothing reserved, stored or recorded as a
    refusal (tests/test_deleted_follow_up.py runs the race itself over HTTP)."""
    user, gone = uuid.uuid4(), uuid.uuid4()
    failed, sent = _admit_once(db_url, _prepared(user, gone, new=False, question="Still there?"))
    assert isinstance(failed, ConversationNotFound) and str(failed) == str(gone), failed
    assert sent == ["WITH held AS"]
    assert _rows(db_engine, gone) == (0, 0)
    day, _ = budget.periods()
    user_row = "SELECT count(*) FROM spend_counters WHERE scope = :s AND period = :d"
    assert scalar(db_engine, user_row, s=f"user:{user}", d=day) == 0
    for table in ("reservations", "llm_calls"):
        rows = f"SELECT count(*) FROM {table} WHERE user_id = :u"  # noqa: S608 (constant)
        assert scalar(db_engine, rows, u=user) == 0, table


_WAITING = text(
    "SELECT pg_blocking_pids(pid) FROM pg_stat_activity "
    "WHERE query LIKE 'WITH %ragship_reserve(%' AND state = 'active'"
)
_LOCK_USER_ROW = text(
    "SELECT 1 FROM spend_counters WHERE scope = :s AND period = :d FOR UPDATE NOWAIT"
)


def test_a_follow_up_waits_for_its_conversation_before_taking_any_counter(
    new_database: Any,
) -> None:
    """Settling an answer locks the conversation's row, then the counters' rows. A follow-up
    in the same conversation must take them in that order too, else each waits for the
    other (a deadlock) and, worse, a reservation holds the shared counters' rows while it
    waits for a client-driven transaction. Here a transaction holds the conversation's row
    (as a settle in flight does); while the follow-up waits for it, a third connection can
    lock the user's and the global day counter's rows with NOWAIT."""
    url = new_database()
    engine = make_sync_engine(url)
    user, conversation = uuid.uuid4(), uuid.uuid4()
    assert isinstance(
        _admit_once(url, _prepared(user, conversation, new=True, question="First"))[0],
        budget.Reservation,
    )
    outcome: list[Any] = []
    worker = threading.Thread(
        target=lambda: outcome.append(
            _admit_once(url, _prepared(user, conversation, new=False, question="Second"))[0]
        )
    )
    settling, other, watch = (engine.connect() for _ in range(3))
    day, _ = budget.periods()
    try:
        settling_pid = settling.execute(text("SELECT pg_backend_pid()")).scalar_one()
        settling.execute(
            text("UPDATE conversations SET updated_at = now() WHERE id = :c"), {"c": conversation}
        )
        worker.start()

        def blockers() -> list[int]:
            row = watch.execute(_WAITING).first()
            watch.rollback()
            return list(row[0]) if row else []

        eventually(lambda: blockers() == [settling_pid], what="the follow-up waits")
        for scope in (f"user:{user}", "global"):
            try:
                other.execute(_LOCK_USER_ROW, {"s": scope, "d": day})
            except OperationalError as exc:
                pytest.fail(f"the waiting follow-up holds the {scope} counter ({exc.orig})")
            other.rollback()
        settling.commit()
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert isinstance(outcome[0], budget.Reservation), outcome
        assert _rows(engine, conversation) == (1, 2)
    finally:
        for conn in (settling, other, watch):
            conn.close()
        engine.dispose()
