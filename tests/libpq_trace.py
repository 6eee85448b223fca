"""libpq's trace of what an engine's connections send, for tests that check round trips:
which statements leave together in one flight, before the server has answered any."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from psycopg import pq
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@contextmanager
def traced_checkouts(engine: AsyncEngine, sink: IO[str]) -> Iterator[None]:
    """Every connection checked out of `engine` inside the block writes libpq's trace (no
    timestamps) to `sink` until it is checked in."""

    def traced(dbapi_connection: Any, *_: Any) -> None:
        pgconn = dbapi_connection.driver_connection.pgconn
        pgconn.trace(sink.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    def untraced(dbapi_connection: Any, *_: Any) -> None:
        dbapi_connection.driver_connection.pgconn.untrace()

    event.listen(engine.sync_engine, "checkout", traced)
    event.listen(engine.sync_engine, "checkin", untraced)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "checkout", traced)
        event.remove(engine.sync_engine, "checkin", untraced)


def flight_from(lines: list[str], start: int) -> list[str]:
    """The trace lines the client sent (``F``) from `start` on, before the server's first
    answer: one flight, one round trip."""
    return list(itertools.takewhile(lambda line: line.startswith("F"), lines[start:]))


def flights(lines: list[str]) -> list[list[str]]:
    """All of `lines` cut into flights (what the client sent before the server's next
    answer: one round trip each), each as the first three words of the statements it
    parsed, in order ("" for one whose text begins on a new line). A statement's text that
    runs over several lines continues its flight (`flight_from` stops at such a line)."""
    cut: list[list[str]] = []
    sending = False
    for line in lines:
        if line.startswith("F"):
            if not sending:
                cut.append([])
            sending = True
            if "\tParse\t" in line:
                cut[-1].append(_head(line.split('"')[3]))
        elif line.startswith("B"):
            sending = False
    return cut


def statement_heads(flight: list[str]) -> list[str]:
    """The first three words of each statement parsed in `flight`, in order."""
    return [_head(line.split('"')[3]) for line in flight if "\tParse\t" in line]


def sent_statements(lines: list[str]) -> list[str]:
    """The first three words of every statement the client sent in `lines`, in order: those
    parsed (extended protocol, `statement_heads`) and those sent as simple queries (psycopg
    sends a statement without parameters so, and SQLAlchemy its BEGIN, COMMIT, ROLLBACK)."""
    sent = [line.split('"')[3 if "\tParse\t" in line else 1] for line in lines
            if line.startswith("F") and ("\tParse\t" in line or "\tQuery\t" in line)]  # fmt: skip
    return [_head(sql) for sql in sent]


def _head(sql: str) -> str:
    return " ".join(sql.split()[:3])
