"""An answer's pieces that queue up while the event loop is busy are relayed together
(`Relay`'s batches, app/chat.py): the same text in order, fewer events; a reader
that keeps up still gets every piece as it comes. A relay reads its source from the moment
it is made (the upstream is asked before the answer's first events), and closing it closes
the source, read or not."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest
from sqlalchemy import Engine
from sse_starlette import ServerSentEvent

from app.caps.chain import admit
from app.caps.early import EarlyReservation
from app.chat import stream_answer
from app.http.event_stream import EventStream
from app.prepare import ChatEvent, PreparedChat
from app.shutdown import Relay, ShuttingDown, StopSignal
from tests.conftest import LocalModel, eventually, scalar
from tests.direct import direct_services, prepared_question
from tests.sse import chat

PIECES = [f"piece{n} " for n in range(8)]
MINI = "gpt-4o-mini"
QUESTION = "How do I ingest PDF files?"


def _never() -> StopSignal:
    return StopSignal(anyio.Event(), after_s=0)


async def _burst(pieces: list[str], *, fail: bool = False) -> AsyncIterator[str]:
    """Every piece at once, as when a burst of chunks sits in one socket read."""
    for piece in pieces:
        yield piece
    if fail:
        raise ConnectionError("cut")


async def _paced(pieces: list[str]) -> AsyncIterator[str]:
    """A turn of the event loop between pieces, as between an upstream's chunks."""
    for piece in pieces:
        yield piece
        await asyncio.sleep(0)


@asynccontextmanager
async def _relay(source: AsyncIterator[str], stop: StopSignal | None) -> AsyncIterator[Relay[str]]:
    relay = Relay(source, stop)
    try:
        yield relay
    finally:
        await relay.aclose()


async def _read(source: AsyncIterator[str], stop: StopSignal | None) -> list[list[str]]:
    async with _relay(source, stop) as relay:
        return [batch async for batch in relay.batches()]


def test_pieces_that_queued_up_come_as_one_batch_in_order() -> None:
    batches = asyncio.run(_read(_burst(PIECES), _never()))
    assert batches == [PIECES]


def test_a_reader_that_keeps_up_gets_every_piece_on_its_own() -> None:
    batches = asyncio.run(_read(_paced(PIECES), _never()))
    assert batches == [[piece] for piece in PIECES]


def test_without_a_stop_signal_the_source_is_relayed_to_its_end() -> None:
    batches = asyncio.run(_read(_burst(PIECES), None))
    assert batches == [PIECES]


def test_a_relay_reads_its_source_from_the_moment_it_is_made() -> None:
    """The answer asks the upstream before its first events go out (app/chat.py): one turn
    of the loop after the relay is made, the source has run, before any batch is asked for."""
    started = asyncio.Event()

    async def upstream() -> AsyncIterator[str]:
        started.set()  # the request is sent here
        for piece in PIECES:
            yield piece

    async def main() -> tuple[bool, list[list[str]]]:
        async with _relay(upstream(), _never()) as relay:
            await asyncio.sleep(0)  # the turn `stream_answer` gives it
            asked = started.is_set()
            return asked, [batch async for batch in relay.batches()]

    asked, batches = asyncio.run(main())
    assert asked
    assert batches == [PIECES]


def test_a_relay_closed_before_it_was_read_closes_its_source() -> None:
    """A client gone before the first event: the upstream request already sent is closed."""
    closed = asyncio.Event()

    async def upstream() -> AsyncIterator[str]:
        try:
            yield PIECES[0]
            await asyncio.Event().wait()  # an upstream that never finishes
            yield "never"
        finally:
            closed.set()

    async def main() -> bool:
        relay = Relay(upstream(), _never())
        await asyncio.sleep(0)
        await relay.aclose()
        return closed.is_set()

    assert asyncio.run(main())


def test_the_pieces_before_a_failure_are_relayed_then_it_is_raised() -> None:
    async def main() -> list[list[str]]:
        got: list[list[str]] = []
        async with _relay(_burst(PIECES, fail=True), _never()) as relay:
            with pytest.raises(ConnectionError):
                async for batch in relay.batches():
                    got.append(batch)
        return got

    assert asyncio.run(main()) == [PIECES]


def test_a_stop_after_queued_pieces_relays_them_then_stops_the_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[str]:
        try:
            for piece in PIECES:
                yield piece
            await asyncio.Event().wait()  # an upstream that never finishes
            yield "never"
        finally:
            closed.set()

    async def main() -> list[list[str]]:
        shutdown = anyio.Event()
        got: list[list[str]] = []
        async with _relay(endless(), StopSignal(shutdown, after_s=0)) as relay:
            with pytest.raises(ShuttingDown):
                async for batch in relay.batches():
                    got.append(batch)
                    shutdown.set()  # the server starts shutting down after the first batch
        assert closed.is_set()  # the upstream request was closed
        return got

    assert asyncio.run(main()) == [PIECES]


def test_a_burst_from_the_upstream_is_relayed_in_few_events_with_the_same_answer(
    client: httpx.Client, local_model: LocalModel, db_engine: Engine
) -> None:
    question = "How do I ingest PDF files?"
    steady = chat(client, question)
    local_model.fault("burst")  # the whole answer in one write: a buffering proxy
    burst = chat(client, question)
    texts = [[d["text"] for n, d in events if n == "token"] for events in (steady, burst)]
    answer = "".join(texts[0])
    assert "".join(texts[1]) == answer and len(answer.split()) > 20
    # One read of the burst is one batch: one event, or two when the guard held back the
    # last word until the end. Asserted loosely, in case the read is split.
    assert len(texts[1]) < len(answer.split()) / 4, texts[1]
    done = [events[-1] for events in (steady, burst)]
    assert [name for name, _ in done] == ["done", "done"]
    # The same answer is charged the same output (the prompt may differ by the state other
    # tests left in the shared database, so its tokens are not compared).
    assert done[1][1]["usage"]["output_tokens"] == done[0][1]["usage"]["output_tokens"]
    stored = scalar(
        db_engine,
        "SELECT content FROM messages WHERE id = :id AND role = 'assistant' AND status = 'ok'",
        id=done[1][1]["message_id"],
    )
    assert stored == answer


def test_a_client_gone_before_the_first_token_closes_the_upstream_request(
    client: httpx.Client, local_model: LocalModel, db_engine: Engine
) -> None:
    """The upstream is asked from the answer's first step, before `meta` (app/chat.py), so
    a client can leave while the request is in flight and no token has come: the request
    is closed (`Relay.aclose`) and the call settled as cancelled."""
    local_model.fault("slow", delay_s=0.5)  # half a second a word: nowhere near the end
    before = local_model.stats()
    with client.stream("POST", "/api/chat", json={"message": "How do I ingest PDF files?"}) as r:
        lines = r.iter_lines()
        assert next(lines) == "event: meta"
        meta = json.loads(next(lines).removeprefix("data: "))
        eventually(
            lambda: local_model.stats()["requests"] == before["requests"] + 1,  # type: ignore[operator]
            what="the upstream to get the request",
        )
    # Leaving the block dropped the connection before any token.
    eventually(
        lambda: local_model.stats()["disconnects"] == before["disconnects"] + 1,  # type: ignore[operator]
        what="the upstream to see the request closed",
    )
    assert local_model.stats()["completed_streams"] == before["completed_streams"]
    sql = "SELECT status FROM llm_calls WHERE trace_id = :trace"
    eventually(
        lambda: scalar(db_engine, sql, trace=meta["trace_id"]) == "cancelled",
        what="the call settled as cancelled",
    )


@asynccontextmanager
async def _answer_begun(
    db_url: str, local_model: LocalModel
) -> AsyncIterator[tuple[AsyncGenerator[ChatEvent, None], ChatEvent, PreparedChat]]:
    """A first-turn answer to QUESTION, admitted on real PostgreSQL against the local model,
    with only its first event taken: yielded (the answer, that event, its `PreparedChat`)
    once the model has the request; the answer is closed on the way out."""
    user = uuid.uuid4()
    prepared = prepared_question(user, QUESTION, MINI)

    async def prepare(_early: EarlyReservation) -> PreparedChat:
        return prepared

    before = await anyio.to_thread.run_sync(lambda: local_model.stats()["requests"])
    overrides = {"llm_base_url": local_model.base_url, "llm_model": MINI}
    async with direct_services(db_url, **overrides) as services:
        admission = await admit(
            services, user_id=user, message=QUESTION, max_tokens=50, prepare=prepare
        )
        stream = stream_answer(services, admission, span=services.tracer.start_span("c"))
        try:
            first = await anext(stream)
            # Waited for in a thread: this loop stays free for the relay's request.
            await anyio.to_thread.run_sync(
                lambda: eventually(
                    lambda: local_model.stats()["requests"] == before + 1,  # type: ignore[operator]
                    what="the upstream to get the request",
                )
            )
            yield stream, first, prepared
        finally:
            await stream.aclose()


def test_the_answer_asks_the_upstream_before_its_first_event(
    db_url: str, local_model: LocalModel
) -> None:
    """`stream_answer` goes no further than an event until it is asked for the next: with
    only `meta` taken, the upstream still gets the request (the relay was made before it)."""

    async def main() -> str:
        async with _answer_begun(db_url, local_model) as (_, first, _):
            return first.name

    before = local_model.stats()["requests"]
    assert asyncio.run(main()) == "meta"
    assert local_model.stats()["requests"] == before + 1  # type: ignore[operator]


def test_an_answer_its_response_never_read_is_closed_and_settled_on_close(
    db_url: str, db_engine: Engine, local_model: LocalModel
) -> None:
    """The chat route takes the answer's first event before it makes the response
    (app/routes/chat.py), so the upstream request is out from then on, and the response
    closes the answer when it is done (`EventStream`'s ``on_close``). Here the response's
    body never reads the answer: when the response has ended, the call is settled as
    cancelled all the same, and the upstream never finished a stream."""
    local_model.fault("slow", delay_s=0.5)  # half a second a word: nowhere near the end
    sql = "SELECT status FROM llm_calls WHERE trace_id = :trace"

    async def unread() -> AsyncIterator[ServerSentEvent]:
        return
        yield  # an async generator that ends without reading the answer

    async def receive() -> dict[str, str]:
        await asyncio.Event().wait()  # the client stays
        raise AssertionError("unreachable")

    async def send(_message: object) -> None:
        pass

    async def main() -> tuple[str, object]:
        async with _answer_begun(db_url, local_model) as (stream, first, prepared):
            response = EventStream(unread(), on_close=stream.aclose, ping=0)
            await response({"type": "http", "method": "POST", "headers": []}, receive, send)
            # Read before the answer is closed on the way out (and before this loop's
            # shutdown, which would close a stream left open).
            status = await anyio.to_thread.run_sync(
                lambda: scalar(db_engine, sql, trace=prepared.trace_id)
            )
            return first.name, status

    completed = local_model.stats()["completed_streams"]
    assert asyncio.run(main()) == ("meta", "cancelled")
    assert local_model.stats()["completed_streams"] == completed
