"""chunks.tsv kept in the row (storage MAIN), out of the TOAST table where it can.

A chunk's row holds its text, its tsvector and its 384-float embedding (about 1.5 kB, not
compressible): together past PostgreSQL's 2 kB TOAST threshold, so the toaster moved
values out of line, the tsvector of many chunks among them. The keyword side tests
`tsv @@ query` for every chunk it scans and ranks the matches with `ts_rank`, so each of
those chunks cost a TOAST fetch. With storage MAIN, PostgreSQL moves the other values out
first and keeps the tsvector in the row (compressed) unless the row cannot fit without it.
On the bundled docs (392 chunks) the hybrid search's round trip took 2.64 against 3.08 ms
at the median, and 3.55 against 4.19 ms in a second run (docs/retrieval.md).

The storage applies to rows written from now on (an ingest's new and changed chunks);
`VACUUM FULL chunks` rewrites the rows already there (it locks the table while it runs).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE chunks ALTER COLUMN tsv SET STORAGE MAIN")


def downgrade() -> None:
    op.execute("ALTER TABLE chunks ALTER COLUMN tsv SET STORAGE EXTENDED")
