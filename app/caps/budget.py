"""Layers 3–5, money: per-user daily cap, global daily cap, monthly budget, by reservation.

Before a call, the most it can cost is reserved in PostgreSQL with conditional UPDATEs
(`spent + reserved + amount <= cap`): row locks make concurrent reservations queue, and
each re-checks the condition, so parallel requests can never overspend a cap. The whole
reservation is one statement (`ragship_reserve`, migration 0014) run in autocommit, so the
locks on the shared global rows are held for microseconds of server time, not across
round trips to a client whose event loop may be busy. After the call, `settle` turns the
reservation into the actual cost in the same transaction that records the call. Days are
UTC calendar days (reset at 00:00 UTC); months likewise.

Writes that must happen exactly when the reservation is allowed (the question and its
conversation, app/question.py) can ride in the same statement (`AdmittedWrites`): no
second round trip, and nothing is stored for a refused request. This module knows only
their SQL, not what they store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.caps.refusal import cap_refused
from app.db import autocommit_connection, pipelined
from app.settings import Settings

GLOBAL = "global"

ALLOWED = "allowed"
_RESERVE_CALL = (
    "SELECT ragship_reserve(:id, :user_id, :user_scope, :global, :day, :month, "
    "CAST(:amount AS numeric), CAST(:user_cap AS numeric), CAST(:day_cap AS numeric), "
    "CAST(:month_cap AS numeric), :kill_switch, CAST(:ceiling AS numeric), :ttl, :shards)"
)
_RESERVE_ALL = text(_RESERVE_CALL)
CLOSED_COLUMNS = "user_id, day, month, amount_usd, day_shard, month_shard"  # `closed_from`'s
_CLOSE = text(  # a constant column list; the id is bound
    f"UPDATE reservations SET settled_at = now() WHERE id = :id AND settled_at IS NULL "  # noqa: S608
    f"RETURNING {CLOSED_COLUMNS}"
)
_CHARGE = text(
    "SELECT spent, reserved FROM ragship_charge(CAST(:scopes AS text[]), "
    "CAST(:periods AS text[]), CAST(:amount AS numeric), CAST(:cost AS numeric))"
)


@dataclass(frozen=True)
class Reservation:
    id: uuid.UUID
    user_id: uuid.UUID | None  # None: a service call (health probe), global caps only
    amount: Decimal
    day: str
    month: str


class LockedRowGone(Exception):
    """`AdmittedWrites.lock` locked no row: nothing was reserved and nothing written."""


@dataclass(frozen=True)
class AdmittedWrites:
    """SQL that runs in the reservation's statement and changes rows only when it is allowed.

    ``writes``: data-modifying statements (INSERT ... SELECT, UPDATE ... FROM), each reading
    ``FROM admitted``, a relation of one row (no columns) when the reservation is allowed
    and none when it is refused. ``lock``: an optional locking SELECT (``... FOR NO KEY
    UPDATE``) of the existing rows the writes will update, run before the reservation takes
    the counters' rows, so the lock order stays rows first, counters after, as when a call
    settles (docs/caps.md, "No deadlocks"). When ``lock`` locks no row (deleted since the
    caller read it: a concurrent delete committed before or while the lock waited), the
    reservation is not attempted and nothing is written: `reserve` raises ``gone()``.
    ``params``: their values, by names that must not clash with the reservation's own.
    PostgreSQL's errors fail the whole statement, reservation included. ``undo``: statements
    (same ``params``) that remove what the writes made, for a reservation given back
    before its call (app/caps/early.py)."""

    writes: tuple[str, ...]
    params: Mapping[str, Any]
    lock: str | None = None
    gone: Callable[[], Exception] = LockedRowGone
    undo: tuple[str, ...] = ()


def _statement(also: AdmittedWrites | None) -> TextClause:
    """The reservation's statement: `ragship_reserve` alone, or with ``also`` riding along."""
    return _RESERVE_ALL if also is None else _with_writes(also.lock, also.writes)


@lru_cache(maxsize=64)
def _with_writes(lock: str | None, writes: tuple[str, ...]) -> TextClause:
    """`_statement` with writes, built once per shape (constant SQL; parsing it again cost
    about 0.15 ms a request). One statement, so one snapshot and one commit: `held` (the
    lock) is read to the end before `ragship_reserve` runs (an aggregate consumes its input
    first), which runs only when it locked a row (else `r`, and so the statement, returns
    no row); the writes run after it, from `admitted`; foreign keys are checked at the end."""
    ctes = []
    source = ""
    if lock is not None:
        ctes.append(f"held AS ({lock})")
        source = " FROM (SELECT count(*) AS locked FROM held) AS h WHERE h.locked > 0"
    ctes.append(f"r AS ({_RESERVE_CALL} AS outcome{source})")
    ctes.append("admitted AS (SELECT FROM r WHERE outcome = CAST(:allowed AS text))")
    ctes.extend(f"w{n} AS ({sql})" for n, sql in enumerate(writes))
    # Only constant fragments (ours and the caller's SQL text) are joined; values are bound.
    return text("WITH " + ", ".join(ctes) + " SELECT outcome FROM r")  # noqa: S608


def periods(now: datetime | None = None) -> tuple[str, str]:
    now = now or datetime.now(UTC)
    return now.strftime("%Y-%m-%d"), now.strftime("%Y-%m")


def user_scope(user_id: uuid.UUID) -> str:
    return f"user:{user_id}"


def shard_scope(shard: int) -> str:
    """The scope of one shard of a global counter: 'global', 'global#1', ... (migration 0019)."""
    return GLOBAL if shard == 0 else f"{GLOBAL}#{shard}"


def _scopes(
    user_id: uuid.UUID | None, day: str, month: str, day_shard: int = 0, month_shard: int = 0
) -> list[tuple[str, str]]:
    """The counter rows a reservation holds, in lock order (user, global day, global month)."""
    user = [(user_scope(user_id), day)] if user_id is not None else []
    return [*user, (shard_scope(day_shard), day), (shard_scope(month_shard), month)]


def reserve_statement(
    settings: Settings,
    *,
    user_id: uuid.UUID | None,
    amount: Decimal,
    kill_switch: bool = False,
    ceiling: Decimal | None = None,
    also: AdmittedWrites | None = None,
) -> tuple[Reservation, TextClause, dict[str, Any]]:
    """The reservation `reserve` makes, as a statement for `pipelined` (so it can ride in
    another round trip: app/caps/early.py): the `Reservation` it makes when allowed, the
    statement and its parameters. Read its rows with `reserve_outcome`. Raises ValueError
    when ``also``'s parameter names clash with the reservation's."""
    day, month = periods()
    reservation = Reservation(uuid.uuid4(), user_id, amount, day, month)
    params = {
        "id": reservation.id,
        "user_id": user_id,
        "user_scope": user_scope(user_id) if user_id else None,
        "global": GLOBAL,
        "day": day,
        "month": month,
        "amount": amount,
        "user_cap": settings.user_daily_cap_usd,
        "day_cap": settings.global_daily_cap_usd,
        "month_cap": settings.monthly_budget_usd,
        "kill_switch": kill_switch,
        "ceiling": ceiling,
        "ttl": settings.reservation_ttl_s,
        "shards": settings.global_counter_shards,
    }
    if also is not None:
        if clash := (params.keys() | {"allowed"}) & also.params.keys():
            raise ValueError(f"parameters named like the reservation's: {sorted(clash)}")
        params = {**params, **also.params, "allowed": ALLOWED}
    return reservation, _statement(also), params


def reserve_outcome(
    rows: Sequence[Sequence[Any]] | None, also: AdmittedWrites | None = None
) -> str:
    """`ALLOWED` or the refusing layer's name, from `reserve_statement`'s rows. Raises
    ``also.gone()`` when ``also.lock`` locked no row (nothing reserved, nothing written),
    RuntimeError when the statement returned no outcome otherwise."""
    outcome = rows[0][0] if rows else None
    if outcome is None:  # no row: only when a lock locked nothing (`_statement`)
        if also is None or also.lock is None:
            raise RuntimeError("the reservation's statement returned no outcome")
        raise also.gone()
    return str(outcome)


async def reserve(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    user_id: uuid.UUID | None,
    amount: Decimal,
    kill_switch: bool = False,
    ceiling: Decimal | None = None,
    also: AdmittedWrites | None = None,
) -> Reservation:
    """Reserve ``amount`` (USD) against every cap at once, or raise `CapRefused` naming the
    first cap hit. ``user_id=None`` (a service call such as the health probe) reserves
    against the global daily cap and the monthly budget only.

    One statement in autocommit (`ragship_reserve`, migration 0014), sent to psycopg as it
    is (`pipelined`, on an `autocommit_connection`): one round trip, and the counters' row
    locks are held only while PostgreSQL runs it and commits. With
    ``kill_switch`` the operator's pause is checked first (`KILL_SWITCH`, 503), then with
    ``ceiling`` the per-request maximum (`REQUEST_COST`, 413), in the chain's order.
    ``also``: writes made in the same statement, only when the reservation is allowed
    (`AdmittedWrites`); raises ValueError when their parameter names clash with these, and
    ``also.gone()`` (nothing reserved, nothing written) when ``also.lock`` locked no row.
    """
    reservation, statement, params = reserve_statement(
        settings,
        user_id=user_id,
        amount=amount,
        kill_switch=kill_switch,
        ceiling=ceiling,
        also=also,
    )
    async with autocommit_connection(sessions) as connection:
        (rows,) = await pipelined(connection, [(statement, params)], commit=False)
    outcome = reserve_outcome(rows, also)
    if outcome != ALLOWED:
        raise cap_refused(outcome, settings, amount)
    return reservation


@dataclass(frozen=True)
class Closed:
    """A reservation just closed (`close`): what `charge` moves on the counters."""

    amount: Decimal
    scopes: list[tuple[str, str]]  # (scope, period) in lock order: user, global day, month


async def settle(session: AsyncSession, *, reservation_id: uuid.UUID, cost: Decimal) -> bool:
    """Release the reservation and charge ``cost``, inside the caller's transaction.

    Idempotent: a reservation settles once; a second call (say, the expiry sweep racing a
    late settle) changes nothing and returns False.
    """
    closed = await close(session, reservation_id=reservation_id)
    if closed is None:
        return False
    await charge(session, closed, cost=cost)
    return True


async def close(session: AsyncSession, *, reservation_id: uuid.UUID) -> Closed | None:
    """Mark the reservation settled (its own row only: no counter is locked yet); None when
    it was settled already (the expiry sweep, or a second call)."""
    row = (await session.execute(_CLOSE, {"id": reservation_id})).first()
    return None if row is None else closed_from(row)


def closed_from(row: Sequence[Any]) -> Closed:
    """`Closed` from a closed reservation's `CLOSED_COLUMNS`, in that order (as `_CLOSE`
    and app/settle_writes.py return them)."""
    user_id, day, month, amount, day_shard, month_shard = row
    return Closed(Decimal(amount), _scopes(user_id, day, month, day_shard, month_shard))


def charge_statement(closed: Closed, *, cost: Decimal) -> tuple[TextClause, dict[str, Any]]:
    """The statement that moves a closed reservation's counters from reserved to ``cost``
    spent, in one round trip (`ragship_charge`, migration 0022), in lock order; its row is
    the first counter's (spent, reserved) after the charge (`charged`). Run it last in the
    transaction: the global rows it locks are shared by every answer, and stay locked until
    COMMIT (`app.db.commit_with_tail` sends the two together)."""
    return _CHARGE, {
        "scopes": [scope for scope, _ in closed.scopes],
        "periods": [period for _, period in closed.scopes],
        "amount": closed.amount,
        "cost": cost,
    }


def charged(row: Sequence[Any] | None) -> tuple[Decimal, Decimal]:
    """(spent, reserved) from `charge_statement`'s row: the user's today for a user's call,
    a global counter's for a service call. Raises RuntimeError for no row (the function
    always returns one)."""
    if row is None:
        raise RuntimeError("ragship_charge returned no row")
    return Decimal(row[0] or 0), Decimal(row[1] or 0)


async def charge(
    session: AsyncSession, closed: Closed, *, cost: Decimal
) -> tuple[Decimal, Decimal]:
    """`charge_statement` run in the caller's transaction; returns `charged`'s pair."""
    statement, params = charge_statement(closed, cost=cost)
    return charged((await session.execute(statement, params)).one())
