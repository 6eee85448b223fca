"""The hybrid search's SQL text: constant fragments only, every value a bound parameter.

`retrieve.py` builds the statements from these and sends them; the design of each side is
in its docstring and in docs/retrieval.md.
"""

from __future__ import annotations

from sqlalchemy import TextClause, text

# The keyword side, bounded: `ts_rank` scores at most :pool chunks, gathered in three tiers
# (an Append under one LIMIT runs a tier only while the pool is short):
#   1. chunks holding every lexeme of the question (an AND, whose GIN scan is driven by its
#      rarest lexeme), run only when the question has a selective lexeme;
#   2. chunks holding any selective lexeme: one held by at most :common_share of the chunks
#      by the planner's statistics as the last ingest left them (pg_stats.most_common_elems,
#      copied into common_lexemes); a lexeme missing from those statistics is selective;
#   3. chunks holding any lexeme (the OR), in scan order, until the pool is full.
# A corpus whose OR matches fit in the pool ranks every match, as the unbounded OR did; at
# 100k chunks that OR ranked every chunk (hybrid p50 426 ms, `python -m bench scale`).
# The question's tsqueries are written inline, not in a CTE, so that the planner sees them as
# constants and picks a seq scan for a common OR and the GIN index for a rare one;
# hybrid_search makes the transaction's plans custom so a prepared statement keeps that.
# ts_rank's weights are {D, C, B, A}: text D 0.1, title and heading path A 0.2.
_STRICT = "plainto_tsquery('english', :query)"
_LOOSE = f"replace({_STRICT}::text, ' & ', ' | ')::tsquery"
_KEYWORD = f"""
    SELECT id, ROW_NUMBER() OVER (ORDER BY score DESC, id) AS rank
    FROM (
        SELECT id, ts_rank('{{0.1, 0.2, 0.4, 0.2}}', tsv, {_LOOSE}, 1) AS score
        FROM (
            (SELECT id, tsv FROM chunks
             WHERE (SELECT query FROM selective) IS NOT NULL AND tsv @@ {_STRICT}
             LIMIT :pool)
            UNION ALL
            (SELECT id, tsv FROM chunks
             WHERE tsv @@ (SELECT query FROM selective) AND NOT tsv @@ {_STRICT}
             LIMIT :pool)
            UNION ALL
            (SELECT id, tsv FROM chunks
             WHERE tsv @@ {_LOOSE} AND NOT COALESCE(tsv @@ (SELECT query FROM selective), false)
             LIMIT :pool)
            LIMIT :pool
        ) AS pool
        ORDER BY score DESC, id
        LIMIT :candidates
    ) AS matched
"""  # noqa: S608 (constant fragments only; values are bound)

# The question's selective lexemes as one OR tsquery (NULL when it has none). Each lexeme is
# quoted for the tsquery parser (backslash and quote escaped); the question is a bound value.
# The common lexemes come from the table common_lexemes, which ingest refreshes from pg_stats,
# through ragship_common_lexemes (migrations 0020 and 0024; docs/retrieval.md).
_SELECTIVE = r"""
    selective AS (
        SELECT string_agg(
                   '''' || replace(replace(word, '\', '\\'), '''', '''''') || '''', ' | '
               )::tsquery AS query
        FROM unnest(tsvector_to_array(to_tsvector('english', :query))) AS q(word)
        WHERE q.word <> ALL ((SELECT ragship_common_lexemes(:common_share))::text[])
    )
"""

KEYWORD_SQL = text(
    f"WITH {_SELECTIVE} SELECT id FROM ({_KEYWORD}) AS keyword ORDER BY rank"  # noqa: S608
)

# The question's distinct lexemes, as the keyword side sees them (stop words dropped).
_LEXEMES = "SELECT unnest(tsvector_to_array(to_tsvector('english', :query))) AS word"

# The keyword side over a corpus of at most :pool chunks: every chunk holding any lexeme is
# ranked, in one scan. The three tiers above are disjoint and together hold exactly those
# chunks, and no LIMIT cuts a set that fits in the pool, so they rank the same chunks in the
# same order; this reads the table once instead of three times and needs no `selective` CTE.
# On the bundled docs (354 chunks, 88 questions, EXPLAIN ANALYZE): planning 1.11 against
# 1.68 ms and execution 3.70 against 5.69 ms at the median (measured in docs/retrieval.md).
# It reads the question's OR tsquery from `asked` (below), made once per search.
_WHOLE_KEYWORD = """
    SELECT id, ROW_NUMBER() OVER (ORDER BY score DESC, id) AS rank
    FROM (
        SELECT id, ts_rank('{0.1, 0.2, 0.4, 0.2}', tsv, (SELECT loose FROM asked), 1) AS score
        FROM chunks
        WHERE tsv @@ (SELECT loose FROM asked)
        ORDER BY score DESC, id
        LIMIT :candidates
    ) AS matched
"""


# The question's vector and OR tsquery, each computed once per search: the whole-corpus
# statement reads them from here, so that a generic plan (one planned once per connection
# and reused, retrieve.py) is as fast as a custom one. Written inline with the values as
# parameters, a generic plan evaluated `plainto_tsquery` again for every chunk the keyword
# side scanned, where a custom plan folds it to a constant while planning.
_ASKED = f"""
    asked AS MATERIALIZED (
        SELECT CAST(:embedding AS vector) AS query_embedding, {_LOOSE} AS loose
    )
"""


def _hybrid(keyword: str, *, head: str, vector: str) -> TextClause:
    """The hybrid statement around a keyword side: `_KEYWORD`, which reads the `selective`
    CTE that `head` starts with, or `_WHOLE_KEYWORD`, which reads `asked`. ``vector``: the
    question's vector in SQL, the parameter itself or `asked`'s."""
    return text(
        f"""
    WITH {head},
    semantic AS (
        SELECT id, ROW_NUMBER() OVER (ORDER BY embedding <=> {vector}) AS rank
        FROM chunks
        ORDER BY embedding <=> {vector}
        LIMIT :candidates
    ),
    keyword AS ({keyword}),
    fused AS (
        SELECT COALESCE(s.id, k.id) AS id,
               COALESCE(1.0 / (:rrf_k + s.rank), 0) + COALESCE(1.0 / (:rrf_k + k.rank), 0) AS score
        FROM semantic s FULL OUTER JOIN keyword k ON s.id = k.id
    ),
    lexemes AS ({_LEXEMES}),
    kept AS (
        SELECT f.id, f.score, c.similarity, c.document_id, c.heading_path, c.anchor, c.text,
               (SELECT count(*) FROM lexemes WHERE word = ANY (tsvector_to_array(c.tsv)))::float
                   / GREATEST((SELECT count(*) FROM lexemes), 1) AS keyword_share
        FROM fused f
        CROSS JOIN LATERAL (
            SELECT 1 - (embedding <=> {vector}) AS similarity, document_id, heading_path,
                   anchor, text, tsv
            FROM chunks WHERE id = f.id
            OFFSET 0
        ) AS c
        WHERE c.similarity >= :min_similarity
    ),
    gated AS (
        SELECT *, bool_or(similarity >= :confident_similarity
                          OR keyword_share >= :keyword_share) OVER () AS relevant
        FROM kept
    )
    SELECT g.id, g.document_id, d.source, d.title, g.heading_path, g.anchor, g.text,
           g.score, g.similarity
    FROM gated g
    JOIN documents d ON d.id = g.document_id
    WHERE g.relevant
    ORDER BY g.score DESC, g.id
    LIMIT :top_k
    """  # noqa: S608 (only constant fragments are formatted in; values are bound)
    )


HYBRID_SQL = _hybrid(_KEYWORD, head=_SELECTIVE, vector=":embedding")
# Only for a corpus of at most :pool chunks (`whole_corpus` in retrieve.py, CorpusFit).
HYBRID_WHOLE_SQL = _hybrid(
    _WHOLE_KEYWORD, head=_ASKED, vector="(SELECT query_embedding FROM asked)"
)

# Whether the corpus has at most :pool chunks: counted exactly (at most :pool + 1 rows read),
# unless the planner's estimate (pg_class.reltuples, which ingest's ANALYZE refreshes; -1
# before any) puts it past twice the pool, when no row is read: reading 501 rows cost 0.5 ms
# a search at 100k chunks. Only the exact count ever answers true.
FITS_SQL = text(
    """
    SELECT CASE
        WHEN (SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass) > 2 * :pool
        THEN false
        ELSE (SELECT count(*) <= :pool FROM (SELECT 1 FROM chunks LIMIT :pool + 1) AS sample)
    END
    """
)

PLAN_SQL = text(
    "SELECT set_config('hnsw.ef_search', :ef_search, true), "
    "set_config('plan_cache_mode', :plan_cache_mode, true), "
    "set_config('synchronize_seqscans', 'off', true)"
)
