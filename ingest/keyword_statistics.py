"""The corpus's keyword statistics, kept as an ingest leaves the corpus."""

from __future__ import annotations

from sqlalchemy import Engine, text


def refresh_keyword_statistics(engine: Engine) -> int:
    """ANALYZE the chunks and keep their common lexemes for retrieval's keyword side (the
    `common_lexemes` table, migration 0024), so that questions are searched with the
    statistics of the corpus as this ingest left it, not as autovacuum last sampled it.
    Returns how many lexemes the statistics list. ANALYZE samples at most 30,000 rows
    (300 × default_statistics_target), whatever the corpus's size."""
    with engine.begin() as conn:
        conn.execute(text("ANALYZE chunks"))
        return int(conn.execute(text("SELECT ragship_refresh_common_lexemes()")).scalar_one())
