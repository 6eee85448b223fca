"""Two replicas claiming the same sampled answers at the same moment: the one that inserts
second waits on the first's uncommitted claim, then gets nothing back (real PostgreSQL,
two connections; the replica race in tests/test_quality_watch.py, made certain here)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db import make_async_engine, make_sync_engine
from app.models import utcnow
from app.quality import claims
from tests.conftest import eventually, scalar

_CALL = text(
    "INSERT INTO llm_calls (created_at, feature, model, admission, status, question, answer, "
    "output_tokens, cost_usd, reserved_usd) VALUES "
    "(now(), 'chat', 'ragship-local-1', 'allowed', 'ok', 'q', 'a [1]', 5, 0, 0)"
)
_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock'"
)


def test_a_second_replica_claiming_the_same_answers_at_once_gets_none(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    engine = make_sync_engine(url)
    try:
        with engine.begin() as conn:
            for _ in range(3):
                conn.execute(_CALL)
        first = engine.connect()
        transaction = first.begin()  # replica "a" claims, and has not committed yet
        now = utcnow()
        params = {"me": "a", "now": now, "since": now - claims.LOOKBACK, "n": 10}
        params |= {"buckets": claims.SAMPLE_BUCKETS, "sampled": claims.SAMPLE_BUCKETS}
        taken_by_a = sorted(r.call_id for r in first.execute(claims._NEW, params))
        assert len(taken_by_a) == 3
        taken_by_b: list[int] = []

        def replica_b() -> None:
            async def run() -> None:
                async_engine = make_async_engine(url)
                try:
                    sessions = async_sessionmaker(async_engine, expire_on_commit=False)
                    taken_by_b.extend(
                        await claims.claim(sessions, me="b", rate=1, limit=10, retry_after_s=300)
                    )
                finally:
                    await async_engine.dispose()

            asyncio.run(run())

        b = threading.Thread(target=replica_b)
        b.start()
        # "b" has read the same three answers as unclaimed and now waits on "a"'s rows.
        eventually(lambda: scalar(engine, str(_WAITING)) == 1, what="replica b to wait on a")
        transaction.commit()
        first.close()
        b.join(timeout=30)
        assert not b.is_alive()
        assert taken_by_b == []
        claimed_by = scalar(
            engine, "SELECT string_agg(DISTINCT claimed_by, ',') FROM quality_scores"
        )
        assert claimed_by == "a"
    finally:
        engine.dispose()
