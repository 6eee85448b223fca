"""Whether the whole corpus fits in the keyword side's pool, as this process last saw it.

A corpus of at most RETRIEVAL_KEYWORD_POOL chunks can be searched with the keyword side that
ranks every match in one scan (`HYBRID_WHOLE_SQL`): the same passages as the bounded tiers,
for less of PostgreSQL's time (app/rag/search_sql.py). A chat search sends the check
(`FITS_SQL`: at most pool + 1 rows read, none on a corpus estimated at over twice the
pool) in its own round trip when one is due, and picks its statement by what the last
check saw, so the check costs no round trip of its own.

A worker's `CorpusFit` (`Services.corpus_fit`) checks again at most every `RECHECK_S`
seconds, not on every search: the check is a statement of its own in the search's
pipeline, about 0.3 to 0.5 ms of a search at the median on the docs (scratch A/B of the
pipelined search with and without it, 280 each). A fresh one, and one whose pool
changed, checks on its next search.

The answer is a hint kept in this process, not state replicas must agree on: it picks
between two statements that rank the same passages while the corpus fits. After an ingest
that grew the corpus past the pool, a worker's searches still rank every match until the
answer of its next check comes (a check goes out with the first search `RECHECK_S` or more
after the last one), as the keyword side did before it was bounded (slower at 100k
chunks, and the exact ranking the tiers approximate); after one that shrank it, they run
the tiers until then. Until a check has been seen, the tiers are used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import TextClause

from app.rag.search_sql import FITS_SQL

RECHECK_S = 10.0  # a worker's checks, at most one per this many seconds (module docstring)

Statement = tuple[TextClause, dict[str, Any]]


class CorpusFit:
    """The last check's answer (`fits`, False until one was seen). ``recheck_s``: the
    least time between two checks (0, the default: every search checks); ``clock``:
    seconds, monotonic."""

    def __init__(self, recheck_s: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.fits = False
        self.recheck_s = recheck_s
        self._clock = clock
        self._sent_at: float | None = None  # when the last check was sent
        self._pool: int | None = None  # the pool it checked against

    def check(self, pool: int) -> list[Statement]:
        """The check as a statement for `pipelined`, in a list, when one is due: none was
        sent for this ``pool``, or the last went out ``recheck_s`` or more ago. Otherwise
        an empty list. A check that is sent is not due again for ``recheck_s``, even
        before its answer comes: concurrent searches send one, not one each."""
        now = self._clock()
        if self._pool == pool and self._sent_at is not None:
            if now - self._sent_at < self.recheck_s:
                return []
        self._pool, self._sent_at = pool, now
        return [(FITS_SQL, {"pool": pool})]

    @staticmethod
    def sent(statements: Sequence[tuple[TextClause, Any]]) -> bool:
        """Whether ``statements`` (as `configured_statements` makes them) begin with the
        check, whose rows then go to `saw`."""
        return bool(statements) and statements[0][0] is FITS_SQL

    def saw(self, rows: list[tuple[Any, ...]] | None) -> None:
        """Keep the check's answer from its rows (as `pipelined` returns them)."""
        self.fits = bool(rows and rows[0][0])
