"""common_lexemes: the chunks' common lexemes kept in a table at ingest, not read from pg_stats
per question.

Retrieval's keyword side (app/rag/retrieve.py) asks `ragship_common_lexemes(share)` once per
question for the lexemes in more than `share` of the chunks. Its body (migration 0020) read
them from the `pg_stats` view, turning the tsvector column's most_common_elems (up to 1,000
lexemes, an anyarray) into text and back for every question: about 1 ms of the hybrid
search's 13–14 ms on the bundled docs (docs/retrieval.md). And the statistics were whatever
autovacuum's last ANALYZE of `chunks` found, so the same question could be searched with
different common lexemes a minute after an ingest than right after it.

Now ingest analyzes `chunks` when it changed any, and `ragship_refresh_common_lexemes()`
copies the lexemes and their shares into `common_lexemes`; the function reads that table.
Until the next ingest the keyword side keeps the same common lexemes, whatever autovacuum
does in between.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

REFRESH = """
CREATE FUNCTION ragship_refresh_common_lexemes() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    kept integer;
BEGIN
    -- One refresh at a time (ingest shards in parallel): a second one's DELETE then sees
    -- the first's rows. Readers are not blocked.
    LOCK TABLE common_lexemes IN EXCLUSIVE MODE;
    DELETE FROM common_lexemes;
    -- most_common_elem_freqs ends with three more numbers than there are words: skipped.
    INSERT INTO common_lexemes (word, share)
    SELECT e.word, max(e.share)
    FROM pg_stats,
         unnest(most_common_elems::text::text[], most_common_elem_freqs) AS e(word, share)
    WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'tsv'
      AND e.word IS NOT NULL
    GROUP BY e.word;
    GET DIAGNOSTICS kept = ROW_COUNT;
    RETURN kept;
END
$$
"""

READ = """
CREATE OR REPLACE FUNCTION ragship_common_lexemes(p_share double precision) RETURNS text[]
LANGUAGE plpgsql STABLE SET plan_cache_mode = 'auto' AS $$
BEGIN
    RETURN ARRAY(SELECT word FROM common_lexemes WHERE share > p_share);
END
$$
"""

READ_0020 = """
CREATE OR REPLACE FUNCTION ragship_common_lexemes(p_share double precision) RETURNS text[]
LANGUAGE plpgsql STABLE SET plan_cache_mode = 'auto' AS $$
BEGIN
    -- most_common_elem_freqs ends with three more numbers than there are words: skipped.
    RETURN ARRAY(
        SELECT e.word
        FROM pg_stats,
             unnest(most_common_elems::text::text[], most_common_elem_freqs) AS e(word, share)
        WHERE schemaname = current_schema() AND tablename = 'chunks' AND attname = 'tsv'
          AND e.word IS NOT NULL AND e.share > p_share
    );
END
$$
"""


def upgrade() -> None:
    op.execute("CREATE TABLE common_lexemes (word text PRIMARY KEY, share real NOT NULL)")
    op.execute(REFRESH)
    op.execute("SELECT ragship_refresh_common_lexemes()")  # the statistics there are now
    op.execute(READ)


def downgrade() -> None:
    op.execute(READ_0020)
    op.execute("DROP FUNCTION IF EXISTS ragship_refresh_common_lexemes()")
    op.execute("DROP TABLE IF EXISTS common_lexemes")
