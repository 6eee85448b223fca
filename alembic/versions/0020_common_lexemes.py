"""ragship_common_lexemes: the lexemes in more than a share of the chunks, from pg_stats.

Retrieval's keyword side (app/rag/retrieve.py) leaves out the question's common lexemes
when it gathers its pool. It read them from the `pg_stats` view inside the hybrid
statement, which is planned afresh for every question (custom plans): planning that view
(four catalogs, privilege checks) took about 1 ms of the statement's 2.5 ms of planning at
100k chunks (docs/retrieval.md). This PL/pgSQL function reads the same rows; its own plan
is cached per connection (`plan_cache_mode = auto` for its body, whatever the calling
transaction set), so the hybrid statement plans one function call instead of the view.

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

FUNCTION = """
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
$$;
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION ragship_common_lexemes(double precision)")
