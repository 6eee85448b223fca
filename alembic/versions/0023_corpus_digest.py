"""corpus_digest: the corpus version kept up to date as documents change, not recomputed.

The response cache keys its entries by the corpus version (app/cache/responses.py). It was
an md5 over every document's source, content hash and embedding model, aggregated in
source order for every first-turn question: 0.2 ms at 20 documents, 24 ms at 10,000 and
46 ms at 50,000 (`python -m bench corpus_version`), on the chat path before the first token.

The version is now the XOR of one md5 per document (of the same three fields), as two
64-bit halves. XOR is order-free and its own inverse, so a statement's change moves it by
the XOR of the rows it removed and the rows it added (transition tables), whatever other
transactions do meanwhile; a document's delete and re-insert with the same content leaves
it as it was. The halves are kept in SHARDS rows, and a transaction moves the row of its
backend (pg_backend_pid() % SHARDS), so ingest writers in parallel (Modal's shards) seldom
wait for one another's row; the version is the XOR over all rows, read in one small scan.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

SHARDS = 16

# One document's md5, split into two signed 64-bit halves.
DOCUMENT_DIGEST = """
CREATE FUNCTION ragship_document_digest(
    p_source text, p_content_hash text, p_model text, OUT hi bigint, OUT lo bigint
) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || substr(h, 1, 16))::bit(64)::bigint, ('x' || substr(h, 17, 16))::bit(64)::bigint
    FROM md5(p_source || ':' || p_content_hash || ':' || p_model) AS h
$$
"""

MOVE = f"""
CREATE FUNCTION ragship_corpus_digest_move() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    added_hi bigint := 0;
    added_lo bigint := 0;
    removed_hi bigint := 0;
    removed_lo bigint := 0;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN  -- holds documents' ACCESS EXCLUSIVE lock: no other writer
        UPDATE corpus_digest SET hi = 0, lo = 0;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT coalesce(bit_xor(d.hi), 0), coalesce(bit_xor(d.lo), 0)
        INTO added_hi, added_lo
        FROM new_rows r,
             ragship_document_digest(r.source, r.content_hash, r.embedding_model) AS d;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT coalesce(bit_xor(d.hi), 0), coalesce(bit_xor(d.lo), 0)
        INTO removed_hi, removed_lo
        FROM old_rows r,
             ragship_document_digest(r.source, r.content_hash, r.embedding_model) AS d;
    END IF;
    IF (added_hi # removed_hi) <> 0 OR (added_lo # removed_lo) <> 0 THEN
        UPDATE corpus_digest
        SET hi = hi # added_hi # removed_hi, lo = lo # added_lo # removed_lo
        WHERE shard = pg_backend_pid() % {SHARDS};
    END IF;
    RETURN NULL;
END;
$$
"""  # noqa: S608 (only SHARDS, a constant, is formatted in)

TRIGGERS = (
    "CREATE TRIGGER documents_digest_insert AFTER INSERT ON documents "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION ragship_corpus_digest_move()",
    "CREATE TRIGGER documents_digest_update AFTER UPDATE ON documents "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION ragship_corpus_digest_move()",
    "CREATE TRIGGER documents_digest_delete AFTER DELETE ON documents "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION ragship_corpus_digest_move()",
    "CREATE TRIGGER documents_digest_truncate AFTER TRUNCATE ON documents "
    "FOR EACH STATEMENT EXECUTE FUNCTION ragship_corpus_digest_move()",
)


def upgrade() -> None:
    op.execute(
        "CREATE TABLE corpus_digest ("
        "shard smallint PRIMARY KEY, hi bigint NOT NULL DEFAULT 0, lo bigint NOT NULL DEFAULT 0)"
    )
    op.execute(DOCUMENT_DIGEST)
    # The documents already there, under a lock that keeps writers out until the triggers
    # exist (migrations run in one transaction).
    op.execute("LOCK TABLE documents IN SHARE MODE")
    op.execute(f"INSERT INTO corpus_digest (shard) SELECT generate_series(0, {SHARDS - 1})")
    op.execute(
        "UPDATE corpus_digest SET hi = s.hi, lo = s.lo FROM ("
        "SELECT coalesce(bit_xor(d.hi), 0) AS hi, coalesce(bit_xor(d.lo), 0) AS lo "
        "FROM documents r, "
        "ragship_document_digest(r.source, r.content_hash, r.embedding_model) AS d) AS s "
        "WHERE shard = 0"
    )
    op.execute(MOVE)
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    for name in ("insert", "update", "delete", "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS documents_digest_{name} ON documents")
    op.execute("DROP FUNCTION IF EXISTS ragship_corpus_digest_move()")
    op.execute("DROP FUNCTION IF EXISTS ragship_document_digest(text, text, text)")
    op.execute("DROP TABLE IF EXISTS corpus_digest")
