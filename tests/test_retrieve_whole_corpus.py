"""A corpus that fits in the keyword pool is searched with the keyword side that ranks every
match in one scan (app/rag/corpus_fit.py): the same passages as the bounded tiers, against
the ingested docs in real PostgreSQL; the chat path picks it by what its last search saw."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from psycopg import pq
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import autocommit_scope, make_async_engine, pipelined
from app.prepare import search_or_cached
from app.rag.corpus_fit import CorpusFit
from app.rag.embedder import Embedder
from app.rag.retrieve import Passage, configured_statements, passages_of
from app.rag.search_sql import HYBRID_WHOLE_SQL
from evals.cases import load_cases
from ingest.pipeline import IngestReport
from tests.conftest import make_settings, scalar

T = TypeVar("T")
SETTINGS = make_settings()
# Beside the eval questions: only stop words (no lexeme), quoting and backslashes (the
# selective CTE quotes lexemes), words no chunk holds, and a one-word question.
ODD = ["What is the of and?", "what's \\ 'quoted' \"ingest\"?", "zzqx plorb wuggle", "caps"]


def autocommit(db_url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    async def go() -> T:
        engine = make_async_engine(db_url)
        try:
            async with autocommit_scope(async_sessionmaker(engine)) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_the_whole_corpus_statement_finds_what_the_tiers_find(
    db_url: str, db_engine: Engine, embedder: Embedder, corpus: IngestReport
) -> None:
    """For every eval question and a few odd ones, on the docs (fewer chunks than the
    pool): the same passages, in the same order, with the same scores, either way."""
    chunks = scalar(db_engine, "SELECT count(*) FROM chunks")
    assert isinstance(chunks, int) and chunks <= SETTINGS.retrieval_keyword_pool
    questions = [case.question for case in load_cases()] + ODD
    vectors = embedder.embed(questions)

    async def both(session: AsyncSession) -> list[tuple[list[Passage], list[Passage]]]:
        out = []
        for question, vector in zip(questions, vectors, strict=True):
            found = []
            for whole in (False, True):
                fit = CorpusFit()
                fit.fits = whole  # as the chat path sends it once a check saw the corpus fit
                statements = configured_statements(
                    SETTINGS, query=question, embedding=vector, fit=fit
                )
                *_, rows = await pipelined(session, statements, commit=False)
                found.append(passages_of(rows))
            out.append((found[0], found[1]))
        return out

    pairs = autocommit(db_url, both)
    differ = [q for q, (tiers, whole) in zip(questions, pairs, strict=True) if tiers != whole]
    assert not differ
    answered = sum(bool(tiers) for tiers, _ in pairs)
    assert answered >= len(load_cases()) // 2, "too few questions retrieved anything to compare"


def _traced_search(
    db_url: str, embedder: Embedder, fit: CorpusFit, trace: Path, **settings: Any
) -> tuple[str, list[Passage]]:
    """One chat-path search (`search_or_cached`, no response cache): what it sent before
    PostgreSQL's first answer (libpq's trace: F from the client, B from the server) and
    the passages."""
    question = "How do I roll back a release when the migration failed?"
    embedding = embedder.embed_one(question)

    async def work(session: AsyncSession) -> list[Passage]:
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        with trace.open("w") as sink:
            raw.pgconn.trace(sink.fileno())
            raw.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                _, _, passages = await search_or_cached(
                    session,
                    make_settings(**settings),
                    question=question,
                    embedding=embedding,
                    cache=None,
                    fit=fit,
                )
            finally:
                raw.pgconn.untrace()
        return passages

    passages = autocommit(db_url, work)
    sent, _ = trace.read_text().split("\nB\t", 1)  # the client's messages, to the first answer
    return sent, passages


def test_the_chat_path_ranks_the_whole_corpus_once_a_search_saw_it_fit(
    db_url: str, embedder: Embedder, corpus: IngestReport, tmp_path: Path
) -> None:
    """The first search runs the tiers (whose selective CTE reads the common lexemes) and
    sees the docs fit the pool; the next runs the whole-corpus statement, in the same one
    round trip, and finds the same passages."""
    fit = CorpusFit()
    first, tiered = _traced_search(db_url, embedder, fit, tmp_path / "first.trace")
    assert "ragship_common_lexemes" in first and fit.fits
    second, whole = _traced_search(db_url, embedder, fit, tmp_path / "second.trace")
    assert "ragship_common_lexemes" not in second and "tsv @@" in second
    assert second.count("\tSync") == 1
    assert whole == tiered and whole


def test_a_corpus_one_chunk_over_the_pool_keeps_the_tiers(
    db_url: str, db_engine: Engine, embedder: Embedder, corpus: IngestReport, tmp_path: Path
) -> None:
    """The check's edge: a pool of exactly the corpus's chunks fits, one fewer does not (the
    exact count), nor does a pool under half the corpus (PostgreSQL's row estimate, with no
    count), and a search that saw it not fit runs the tiers again."""
    chunks = scalar(db_engine, "SELECT count(*) FROM chunks")
    assert isinstance(chunks, int)
    fit = CorpusFit()
    _traced_search(db_url, embedder, fit, tmp_path / "a.trace", retrieval_keyword_pool=chunks)
    assert fit.fits
    _traced_search(db_url, embedder, fit, tmp_path / "b.trace", retrieval_keyword_pool=chunks - 1)
    assert not fit.fits
    sent, _ = _traced_search(
        db_url, embedder, fit, tmp_path / "c.trace", retrieval_keyword_pool=chunks - 1
    )
    assert "ragship_common_lexemes" in sent
    _traced_search(db_url, embedder, fit, tmp_path / "d.trace", retrieval_keyword_pool=chunks)
    assert fit.fits
    _traced_search(db_url, embedder, fit, tmp_path / "e.trace", retrieval_keyword_pool=chunks // 3)
    assert not fit.fits


def _plans(
    db_url: str, statements: list[list[tuple[Any, dict[str, Any]]]]
) -> list[tuple[int, int, str]]:
    """Run each search's statements in one pipeline on one connection (psycopg prepares a
    statement on its sixth run), then read that connection's plan counts per statement
    (PostgreSQL's pg_prepared_statements): (generic plans, custom plans, statement)."""

    async def work(session: AsyncSession) -> list[tuple[int, int, str]]:
        for search in statements:
            await pipelined(session, search, commit=False)
        rows = await session.execute(
            text("SELECT generic_plans, custom_plans, statement FROM pg_prepared_statements")
        )
        return [(int(g), int(c), str(s)) for g, c, s in rows]

    return autocommit(db_url, work)


def test_the_whole_corpus_statement_is_planned_once_per_connection(
    db_url: str, embedder: Embedder, corpus: IngestReport
) -> None:
    """Once psycopg prepares it, the whole-corpus statement runs on one generic plan, made
    once per connection: no planning per search. The tiers keep a plan made for each
    question's values (a common OR is scanned in order, a rare one read from GIN)."""
    questions = [case.question for case in load_cases()][:8]
    vectors = embedder.embed(questions)
    searches: dict[bool, list[list[tuple[Any, dict[str, Any]]]]] = {}
    for whole in (True, False):
        fit = CorpusFit()
        fit.fits = whole
        searches[whole] = [
            configured_statements(SETTINGS, query=q, embedding=v, fit=fit)
            for q, v in zip(questions, vectors, strict=True)
        ]
    counts = _plans(db_url, searches[True] + searches[False])
    whole = [(g, c) for g, c, sql in counts if "asked AS MATERIALIZED" in sql]
    tiers = [(g, c) for g, c, sql in counts if "selective AS" in sql]
    assert len(whole) == 1 and len(tiers) == 1, counts
    generic, custom = whole[0]
    assert generic >= 2 and custom == 0
    generic, custom = tiers[0]
    assert generic == 0 and custom >= 2


def test_the_whole_corpus_generic_plan_reads_the_question_once(db_engine: Engine) -> None:
    """Its generic plan (PostgreSQL's EXPLAIN (GENERIC_PLAN), the question's values unknown)
    makes the question's tsquery once, not once per chunk scanned, as the statement with the
    tsquery written inline did (about 4 ms more on the docs), and orders the chunks by their
    distance to the question's vector as one value. Whether it reads them through the HNSW
    index or scans them all is the planner's choice at this size: the bundled docs crossed
    from one to the other between 403 and 404 chunks, and at 404 both plans took 1.06-1.10
    ms a search with the same rows (four questions, prepared, 70 timed each way)."""
    names: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    compiled = HYBRID_WHOLE_SQL.compile(dialect=db_engine.dialect).string
    sql = re.sub(r"%\((\w+)\)s", numbered, compiled)
    with db_engine.connect() as connection:
        plan = "\n".join(
            row[0] for row in connection.exec_driver_sql("EXPLAIN (GENERIC_PLAN) " + sql)
        )
    assert "plainto_tsquery" not in plan, plan
    assert re.search(r"\((?:chunks\.)?embedding <=> \$\d+\)", plan), plan


def test_a_workers_fit_checks_again_only_after_its_interval(
    db_url: str, embedder: Embedder, corpus: IngestReport, tmp_path: Path
) -> None:
    """A worker's `CorpusFit` (a recheck interval, here on a clock the test moves): the
    first search checks; the next, within the interval, sends no check and still ranks the
    whole corpus, with the same passages; once the interval has passed, a search checks
    again, and so does one whose pool changed."""
    now = [100.0]
    fit = CorpusFit(recheck_s=10, clock=lambda: now[0])
    first, tiered = _traced_search(db_url, embedder, fit, tmp_path / "a.trace")
    assert "reltuples" in first and fit.fits
    now[0] += 9.9
    within, whole = _traced_search(db_url, embedder, fit, tmp_path / "b.trace")
    assert "reltuples" not in within and "tsv @@" in within and fit.fits
    assert within.count("\tSync") == 1 and whole == tiered and whole
    now[0] += 0.1
    after, _ = _traced_search(db_url, embedder, fit, tmp_path / "c.trace")
    assert "reltuples" in after
    other, _ = _traced_search(db_url, embedder, fit, tmp_path / "d.trace", retrieval_keyword_pool=1)
    assert "reltuples" in other and not fit.fits
