"""Spending caps by reservation, against a real PostgreSQL, under real concurrency."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.caps import budget
from app.caps.refusal import GLOBAL_DAILY, MONTHLY, USER_DAILY, CapRefused, seconds_to_midnight_utc
from app.caps.spend import spend_today
from app.caps.sweeper import sweep_expired
from app.db import make_async_engine, make_sync_engine
from tests.conftest import eventually, make_settings, scalar


def _run_reservations(
    db_url: str, settings_overrides: dict[str, object], users: list[uuid.UUID], amount: str
):  # type: ignore[no-untyped-def]
    settings = make_settings(**settings_overrides)

    async def go() -> list[budget.Reservation | BaseException]:
        engine = make_async_engine(db_url, pool_size=20)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            results = await asyncio.gather(
                *(
                    budget.reserve(sessions, settings, user_id=u, amount=Decimal(amount))
                    for u in users
                ),
                return_exceptions=True,
            )
            for r in results:  # settle every admitted call at its full reservation
                if isinstance(r, budget.Reservation):
                    async with sessions() as session, session.begin():
                        await budget.settle(session, reservation_id=r.id, cost=r.amount)
            return results
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_user_cap_with_20_concurrent_reservations_admits_exactly_2(
    db_url: str, db_engine: Engine
) -> None:
    user = uuid.uuid4()
    day, _ = budget.periods()
    with db_engine.begin() as conn:  # $0.45 already spent: $0.05 left of $0.50
        conn.execute(
            text("INSERT INTO spend_counters VALUES (:s, :d, 0.45, 0)"),
            {"s": f"user:{user}", "d": day},
        )
    results = _run_reservations(
        db_url, {"global_daily_cap_usd": 1000, "monthly_budget_usd": 100000}, [user] * 20, "0.02"
    )
    admitted = [r for r in results if isinstance(r, budget.Reservation)]
    refused = [r for r in results if isinstance(r, CapRefused)]
    assert len(admitted) == 2 and len(refused) == 18
    assert {r.layer for r in refused} == {USER_DAILY} and {r.status for r in refused} == {429}
    spent = scalar(
        db_engine,
        "SELECT spent_usd FROM spend_counters WHERE scope = :s AND period = :d",
        s=f"user:{user}",
        d=day,
    )
    assert spent == Decimal("0.49") and spent <= Decimal("0.50")


def test_global_cap_with_100_users_times_5_concurrent(
    db_url: str, db_engine: Engine, new_database
) -> None:  # type: ignore[no-untyped-def]
    url = new_database()  # its own database: the global counter starts at zero
    users = [uuid.uuid4() for _ in range(100)] * 5
    results = _run_reservations(
        url,
        {"user_daily_cap_usd": 100, "global_daily_cap_usd": "1.00", "monthly_budget_usd": 100000},
        users,
        "0.01",
    )
    admitted = [r for r in results if isinstance(r, budget.Reservation)]
    refused = [r for r in results if isinstance(r, CapRefused)]
    assert len(admitted) == 100 and len(refused) == 400
    assert {r.layer for r in refused} == {GLOBAL_DAILY} and {r.status for r in refused} == {503}
    from app.db import make_sync_engine

    engine = make_sync_engine(url)
    day, _ = budget.periods()
    assert scalar(engine, "SELECT spent_usd FROM ragship_counter('global', :d)", d=day) == Decimal(
        "1.00"
    )
    assert scalar(engine, "SELECT count(*) FROM reservations WHERE settled_at IS NULL") == 0
    engine.dispose()


def test_monthly_budget_is_a_cap_too(new_database) -> None:  # type: ignore[no-untyped-def]
    url = new_database()
    results = _run_reservations(
        url,
        {"user_daily_cap_usd": 100, "global_daily_cap_usd": 100, "monthly_budget_usd": "0.03"},
        [uuid.uuid4() for _ in range(10)],
        "0.01",
    )
    assert sum(isinstance(r, budget.Reservation) for r in results) == 3
    assert {r.layer for r in results if isinstance(r, CapRefused)} == {MONTHLY}


def test_expired_reservations_are_swept_and_charged_in_full(db_url: str, db_engine: Engine) -> None:
    user = uuid.uuid4()
    settings = make_settings()

    async def go() -> int:
        engine = make_async_engine(db_url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            reservation = await budget.reserve(
                sessions, settings, user_id=user, amount=Decimal("0.004")
            )
            async with sessions() as session, session.begin():  # as if its replica died
                await session.execute(
                    text(
                        "UPDATE reservations SET expires_at = now() - interval '1 second' WHERE id = :id"
                    ),
                    {"id": reservation.id},
                )
            swept = await sweep_expired(sessions, model="ragship-local-1")
            again = await sweep_expired(sessions, model="ragship-local-1")
            async with sessions() as session, session.begin():
                late = await budget.settle(
                    session, reservation_id=reservation.id, cost=Decimal("0.001")
                )
            assert (again, late) == (0, False)
            return swept
        finally:
            await engine.dispose()

    assert asyncio.run(go()) >= 1
    day, _ = budget.periods()
    assert scalar(
        db_engine,
        "SELECT spent_usd FROM spend_counters WHERE scope = :s AND period = :d",
        s=f"user:{user}",
        d=day,
    ) == Decimal("0.004")
    assert (
        scalar(
            db_engine,
            "SELECT reserved_usd FROM spend_counters WHERE scope = :s AND period = :d",
            s=f"user:{user}",
            d=day,
        )
        == 0
    )
    assert scalar(
        db_engine,
        "SELECT cost_usd FROM llm_calls WHERE user_id = :u AND status = 'expired'",
        u=user,
    ) == Decimal("0.004")


def test_midnight_utc_is_the_day_boundary() -> None:
    from datetime import UTC, datetime

    assert budget.periods(datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)) == (
        "2026-03-31",
        "2026-03",
    )
    assert budget.periods(datetime(2026, 4, 1, 0, 0, 0, tzinfo=UTC)) == ("2026-04-01", "2026-04")
    assert seconds_to_midnight_utc(datetime(2026, 4, 1, 23, 0, 0, tzinfo=UTC)) == 3601
    # Whole seconds, rounded up: a refusal never says to come back before midnight.
    just_before = datetime(2026, 4, 1, 23, 58, 29, 1, tzinfo=UTC)
    assert seconds_to_midnight_utc(just_before) == 91


def _leak(db_url: str, user: uuid.UUID, amount: str) -> uuid.UUID:
    """A reservation whose replica died: reserved, never settled, now past its expiry."""

    async def go() -> uuid.UUID:
        engine = make_async_engine(db_url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            reservation = await budget.reserve(
                sessions, make_settings(), user_id=user, amount=Decimal(amount)
            )
            async with sessions() as session, session.begin():
                await session.execute(
                    text(
                        "UPDATE reservations SET expires_at = now() - interval '1 second' WHERE id = :id"
                    ),
                    {"id": reservation.id},
                )
            return reservation.id
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_the_sweep_passes_over_settled_reservations_to_reach_a_leaked_one(new_database) -> None:  # type: ignore[no-untyped-def]
    """Old settled reservations (long past their expiry, so first in expiry order) must not
    be claimed: the sweep would spend every turn on them and never reach the leak."""
    url = new_database()
    from app.db import make_sync_engine

    engine = make_sync_engine(url)
    day, month = budget.periods()
    settled = [uuid.uuid4() for _ in range(3)]
    with engine.begin() as conn:
        for n, reservation_id in enumerate(settled):
            conn.execute(
                text(
                    "INSERT INTO reservations (id, user_id, day, month, amount_usd, created_at, expires_at, settled_at) "
                    "VALUES (:id, :user, :day, :month, 0.01, now() - interval '31 days', "
                    "now() - make_interval(days => 30 + :n), now() - interval '29 days')"
                ),
                {"id": reservation_id, "user": uuid.uuid4(), "day": day, "month": month, "n": n},
            )
    settled_at = {
        r: scalar(engine, "SELECT settled_at FROM reservations WHERE id = :id", id=r)
        for r in settled
    }
    leaked = _leak(url, uuid.uuid4(), "0.003")

    async def go() -> int:
        async_engine = make_async_engine(url)
        try:
            return await sweep_expired(
                async_sessionmaker(async_engine, expire_on_commit=False), model="ragship-local-1"
            )
        finally:
            await async_engine.dispose()

    assert asyncio.run(go()) == 1
    assert scalar(
        engine, "SELECT settled_at IS NOT NULL FROM reservations WHERE id = :id", id=leaked
    )
    assert scalar(
        engine, "SELECT cost_usd FROM llm_calls WHERE reservation_id = :id", id=leaked
    ) == Decimal("0.003")
    for reservation_id in settled:  # untouched: same settle time, no call charged for them
        assert (
            scalar(engine, "SELECT settled_at FROM reservations WHERE id = :id", id=reservation_id)
            == settled_at[reservation_id]
        )
    assert (
        scalar(
            engine,
            "SELECT count(*) FROM llm_calls WHERE reservation_id = ANY(:ids)",
            ids=settled,
        )
        == 0
    )
    assert scalar(engine, "SELECT sum(reserved_usd) FROM spend_counters") == 0
    engine.dispose()


def test_the_app_runs_the_sweep_from_start_up(start_app, db_url: str, db_engine: Engine) -> None:  # type: ignore[no-untyped-def]
    """The lifespan starts the sweeper: a reservation leaked before this replica started (a
    crashed one's) is settled without anyone calling the sweep."""
    leaked = _leak(db_url, uuid.uuid4(), "0.002")
    start_app()
    sql = "SELECT settled_at IS NOT NULL FROM reservations WHERE id = :id"
    eventually(lambda: scalar(db_engine, sql, id=leaked), what="the app's sweep to settle it")
    assert (
        scalar(
            db_engine,
            "SELECT status || ' ' || cost_usd FROM llm_calls WHERE reservation_id = :id",
            id=leaked,
        )
        == "expired 0.002000"
    )


def test_spend_today_is_the_users_own_spent_and_reserved_amounts(db_url: str) -> None:
    """What /api/me shows: (spent, reserved) in USD on the user's counter for today."""
    user, stranger = uuid.uuid4(), uuid.uuid4()

    async def go() -> list[tuple[Decimal, Decimal]]:
        engine = make_async_engine(db_url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        settings = make_settings()
        try:
            seen = []
            reservation = await budget.reserve(
                sessions, settings, user_id=user, amount=Decimal("0.004")
            )
            held = (reservation.user_id, reservation.amount, reservation.day, reservation.month)
            assert held == (user, Decimal("0.004"), *budget.periods())
            other = await budget.reserve(
                sessions, settings, user_id=stranger, amount=Decimal("0.002")
            )
            async with sessions() as session:
                seen.append(await spend_today(session, user_id=user))
            async with sessions() as session, session.begin():
                await budget.settle(session, reservation_id=reservation.id, cost=Decimal("0.001"))
                await budget.settle(session, reservation_id=other.id, cost=Decimal("0.002"))
            async with sessions() as session:
                seen.append(await spend_today(session, user_id=user))
                seen.append(await spend_today(session, user_id=uuid.uuid4()))
            return seen
        finally:
            await engine.dispose()

    reserved, settled, nobody = asyncio.run(go())
    assert reserved == (Decimal("0"), Decimal("0.004"))
    assert settled == (Decimal("0.001"), Decimal("0"))
    assert nobody == (Decimal("0"), Decimal("0"))
    assert all(isinstance(v, Decimal) for v in (*reserved, *settled, *nobody))


def test_each_cap_refuses_with_its_own_status_message_and_time_to_reset(new_database) -> None:  # type: ignore[no-untyped-def]
    """One reservation per cap that is hit: what the user is told, and when to come back.
    A service call (no user) is held to the global caps only."""
    url = new_database()
    caps = {"user_daily_cap_usd": "0.05", "global_daily_cap_usd": "1", "monthly_budget_usd": "2"}

    def attempt(user: uuid.UUID | None, amount: str, **overrides: str) -> object:
        settings = make_settings(**{**caps, **overrides})

        async def go() -> object:
            engine = make_async_engine(url)
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            try:
                return await budget.reserve(
                    sessions, settings, user_id=user, amount=Decimal(amount)
                )
            except CapRefused as refused:
                return refused
            finally:
                await engine.dispose()

        latest = seconds_to_midnight_utc()
        result = asyncio.run(go())
        if isinstance(result, CapRefused) and result.retry_after_s is not None:
            # Whole seconds to the next 00:00 UTC, counted while the reservation ran.
            assert seconds_to_midnight_utc() <= result.retry_after_s <= latest
        return result

    def until(refused: CapRefused) -> str:
        assert refused.retry_after_s is not None
        hours, minutes = divmod(refused.retry_after_s // 60, 60)
        return f"(in {hours}h {minutes:02d}m)"

    people = [uuid.uuid4() for _ in range(3)]
    user = attempt(people[0], "0.06")
    assert isinstance(user, CapRefused)
    assert (user.layer, user.status) == (USER_DAILY, 429)
    assert user.message == (
        f"You've reached today's limit of $0.05. It resets at 00:00 UTC {until(user)}."
    )

    day = attempt(people[1], "1.01", user_daily_cap_usd="100")
    assert isinstance(day, CapRefused)
    assert (day.layer, day.status) == (GLOBAL_DAILY, 503)
    assert day.message == (
        "The assistant is paused for today: the service's daily budget is used up. "
        f"It resumes at 00:00 UTC {until(day)}."
    )

    month = attempt(people[2], "2.01", user_daily_cap_usd="100", global_daily_cap_usd="100")
    assert month == CapRefused(
        MONTHLY, 503, "The assistant is paused: this month's budget is used up."
    )

    # A service call: over the user cap, within the global ones; then the global cap binds.
    service = attempt(None, "0.50")
    assert isinstance(service, budget.Reservation) and service.user_id is None
    assert attempt(None, "0.51").layer == GLOBAL_DAILY  # type: ignore[attr-defined]
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            rows = {
                (scope, period): reserved
                for scope, period, reserved in conn.execute(
                    text(  # a sharded global counter's rows (GLOBAL_COUNTER_SHARDS) summed as one
                        "SELECT split_part(scope, '#', 1), period, sum(reserved_usd) "
                        "FROM spend_counters GROUP BY 1, 2"
                    )
                )
            }
    finally:
        engine.dispose()
    # Refusals reserved nothing anywhere; the service call only on the global counters.
    day, month = budget.periods()
    # A counter for each person who asked, none for the service call.
    assert {scope for scope, _ in rows} == {"global", *(f"user:{p}" for p in people)}
    held = {key: rows.pop(key) for key in [("global", day), ("global", month)]}
    assert held == {("global", day): Decimal("0.50"), ("global", month): Decimal("0.50")}
    assert rows and all(v == 0 for v in rows.values()), rows


def test_a_sweep_settles_every_leak_as_an_expired_call_and_logs_how_many(
    new_database, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """Each leaked reservation becomes one call record, charged its full reservation,
    priced by the reservation (the real usage is unknown); the count is logged."""
    url = new_database()
    user = uuid.uuid4()
    leaked = {_leak(url, user, amount): Decimal(amount) for amount in ("0.001", "0.002", "0.003")}

    async def go() -> list[int]:
        async_engine = make_async_engine(url)
        sessions = async_sessionmaker(async_engine, expire_on_commit=False)
        try:
            return [await sweep_expired(sessions, model="ragship-local-1") for _ in range(2)]
        finally:
            await async_engine.dispose()

    with caplog.at_level(logging.WARNING, logger="ragship.caps"):
        assert asyncio.run(go()) == [3, 0]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "settled 3 expired reservations at their full amount")
    ]
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            calls = conn.execute(
                text(
                    "SELECT reservation_id, user_id, model, status, cost_usd, reserved_usd, "
                    "price_source FROM llm_calls"
                )
            ).all()
    finally:
        engine.dispose()
    assert sorted(calls) == sorted(
        (rid, user, "ragship-local-1", "expired", amount, amount, "reservation")
        for rid, amount in leaked.items()
    )


def _reserve_in_own_process(url: str, overrides: dict[str, object], n: int) -> list[str]:
    """One replica: its own engine and pool, ``n`` concurrent reservations of $0.01 for
    distinct users. Returns "allowed", the refusing layer, or for any other outcome (a
    deadlock, a pool timeout) its exception's repr: never "allowed" for an error."""
    results = _run_reservations_unsettled(url, overrides, [uuid.uuid4() for _ in range(n)])
    return [_outcome(r) for r in results]


def _outcome(result: budget.Reservation | BaseException) -> str:
    if isinstance(result, budget.Reservation):
        return "allowed"
    return result.layer if isinstance(result, CapRefused) else repr(result)[:300]


def _run_reservations_unsettled(
    url: str, overrides: dict[str, object], users: list[uuid.UUID]
) -> list[budget.Reservation | BaseException]:
    settings = make_settings(**overrides)

    async def go() -> list[budget.Reservation | BaseException]:
        # The former default pool (10 + 10): up to 20 reservations in flight per process.
        engine = make_async_engine(url, pool_size=10, max_overflow=10)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            return await asyncio.gather(
                *(
                    budget.reserve(sessions, settings, user_id=u, amount=Decimal("0.01"))
                    for u in users
                ),
                return_exceptions=True,
            )
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_global_caps_hold_exactly_across_four_processes(new_database) -> None:  # type: ignore[no-untyped-def]
    """Four replicas (processes, each with its own pool) reserve at once against one global
    daily cap: exactly cap / amount are admitted in total, never one more."""
    url = new_database()
    overrides = {
        "user_daily_cap_usd": 100,
        "global_daily_cap_usd": "0.60",
        "monthly_budget_usd": 100000,
    }
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        outcomes = pool.starmap(_reserve_in_own_process, [(url, overrides, 40)] * 4)
    flat = [o for process in outcomes for o in process]
    assert flat.count("allowed") == 60 and flat.count(GLOBAL_DAILY) == 100
    from app.db import make_sync_engine

    engine = make_sync_engine(url)
    day, month = budget.periods()
    sql = "SELECT spent_usd + reserved_usd FROM ragship_counter('global', :p)"  # every shard
    assert scalar(engine, sql, p=day) == Decimal("0.60")
    assert scalar(engine, sql, p=month) == Decimal("0.60")  # a refusal leaves no trace
    assert scalar(engine, "SELECT sum(amount_usd) FROM reservations") == Decimal("0.60")
    engine.dispose()
