"""Spending caps by reservation, against a real PostgreSQL, under real concurrency."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from decimal import Decimal

from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.caps import budget
from app.caps.refusal import GLOBAL_DAILY, MONTHLY, USER_DAILY, CapRefused
from app.caps.sweeper import sweep_expired
from app.db import make_async_engine
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
    assert scalar(
        engine, "SELECT spent_usd FROM spend_counters WHERE scope = 'global' AND period = :d", d=day
    ) == Decimal("1.00")
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
    assert budget.seconds_to_midnight_utc(datetime(2026, 4, 1, 23, 0, 0, tzinfo=UTC)) == 3601


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


def _reserve_in_own_process(url: str, overrides: dict[str, object], n: int) -> list[str]:
    """One replica: its own engine and pool, ``n`` concurrent reservations of $0.01 for
    distinct users. Returns "allowed" or the refusing layer for each."""
    results = _run_reservations_unsettled(url, overrides, [uuid.uuid4() for _ in range(n)])
    return [r.layer if isinstance(r, CapRefused) else "allowed" for r in results]


def _run_reservations_unsettled(
    url: str, overrides: dict[str, object], users: list[uuid.UUID]
) -> list[budget.Reservation | BaseException]:
    settings = make_settings(**overrides)

    async def go() -> list[budget.Reservation | BaseException]:
        engine = make_async_engine(url, pool_size=10)
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
    sql = (
        "SELECT spent_usd + reserved_usd FROM spend_counters WHERE scope = 'global' AND period = :p"
    )
    assert scalar(engine, sql, p=day) == Decimal("0.60")
    assert scalar(engine, sql, p=month) == Decimal("0.60")  # a refusal leaves no trace
    assert scalar(engine, "SELECT sum(amount_usd) FROM reservations") == Decimal("0.60")
    engine.dispose()
