"""Whether the whole corpus fits in the keyword side's pool, as this process last saw it.

A corpus of at most RETRIEVAL_KEYWORD_POOL chunks can be searched with the keyword side that
ranks every match in one scan (`HYBRID_WHOLE_SQL`): the same passages as the bounded tiers,
for less of PostgreSQL's time (app/rag/search_sql.py). Each chat search sends the check
(`FITS_SQL`: at most pool + 1 rows read, none on a corpus estimated at over twice the
pool) in its own round trip and picks its statement by what the previous search saw, so
the check costs no round trip of its own.

The answer is a hint kept in this process, not state replicas must agree on: it picks
between two statements that rank the same passages while the corpus fits. Just after an
ingest that grew the corpus past the pool, one search per worker still ranks every match,
as the keyword side did before it was bounded (slower at 100k chunks, and the exact ranking
the tiers approximate); after one that shrank it, one search runs the tiers. Until a search
has looked, the tiers are used.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import TextClause

from app.rag.search_sql import FITS_SQL


class CorpusFit:
    """The last check's answer (`fits`, False until one was seen)."""

    def __init__(self) -> None:
        self.fits = False

    @staticmethod
    def check(pool: int) -> tuple[TextClause, dict[str, Any]]:
        """The check as a statement for `pipelined`: one row, one boolean."""
        return FITS_SQL, {"pool": pool}

    def saw(self, rows: list[tuple[Any, ...]] | None) -> None:
        """Keep the check's answer from its rows (as `pipelined` returns them)."""
        self.fits = bool(rows and rows[0][0])
