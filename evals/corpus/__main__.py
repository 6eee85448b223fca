"""`python -m evals.corpus`: retrieval over a real manual nobody here wrote (`make eval-corpus`).

Fetches and unpacks the corpus when missing (evals/corpus/fetch.py), ingests its subset
into a fresh embedded PostgreSQL (or `--database-url`, incrementally), asks every question
of evals/corpus/questions.toml through `hybrid_search` with the app's settings, and prints
hit@1/3/5, MRR, key-string rate and out-of-scope refusals per split and kind.

Definitions: a question hits at k when a page that answers it is among the first k
passages; MRR uses the rank of the first such passage among the `top_k` (0 if none); the
key-string rate is the share of in-scope questions whose key string (case and spacing
ignored) is in the text of a retrieved passage; an out-of-scope question is refused when
it retrieves nothing: no passage clears the minimum similarity, or the question fails the
relevance gate. `max sim` columns show the best cosine similarity of any candidate, which
the thresholds are chosen from (docs/retrieval.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.settings import Settings
from evals.corpus.fetch import corpus_root, subset
from evals.corpus.questions import SPLITS, Question, load_questions
from evals.corpus.score import Result, summarize


def parse(argv: list[str]) -> argparse.Namespace:
    defaults = Settings(_env_file=None)
    p = argparse.ArgumentParser(prog="python -m evals.corpus", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--database-url", help="ingest into this database (incremental)")
    p.add_argument("--top-k", type=int, default=defaults.retrieval_top_k)
    p.add_argument("--candidates", type=int, default=defaults.retrieval_candidates)
    p.add_argument("--min-similarity", type=float, default=defaults.retrieval_min_similarity)
    p.add_argument("--rrf-k", type=int, default=defaults.rrf_k)
    p.add_argument("--relevance-similarity", type=float, default=defaults.relevance_similarity)
    p.add_argument(
        "--relevance-keyword-share", type=float, default=defaults.relevance_keyword_share
    )
    p.add_argument("--split", choices=SPLITS, action="append", help="only these splits")
    p.add_argument("--json", type=Path, help="write per-question results here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from app.db import make_sync_engine
    from app.rag.embedder import Embedder
    from ingest.pipeline import ingest_paths

    defaults = Settings(_env_file=None)
    root = corpus_root()
    files = subset(root)
    questions = [q for q in load_questions() if not args.split or q.split in args.split]
    embedder = Embedder()
    with _database(args.database_url) as url:
        engine = make_sync_engine(url)
        try:
            report = ingest_paths(
                files,
                engine=engine,
                embedder=embedder,
                chunk_tokens=defaults.chunk_tokens,
                chunk_overlap=defaults.chunk_overlap,
            )
        finally:
            engine.dispose()
        print(f"corpus: {root} ({len(files)} pages)\ningest: {report.summary()}")
        for source, reason in report.errors:
            print(f"  error: {source}: {reason}")
        results = asyncio.run(_ask(url, embedder, questions, args))
    gate = (args.relevance_similarity, args.relevance_keyword_share)
    print(summarize(results, min_similarity=args.min_similarity, top_k=args.top_k, gate=gate))
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=1))
    return 0


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    from app.migrate import upgrade_to_head

    if url:
        upgrade_to_head(url)
        yield url
        return
    import pgserver

    with tempfile.TemporaryDirectory(prefix="ragship-corpus-pg-") as tmp:
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            name = f"corpus_{uuid.uuid4().hex[:12]}"
            server.psql(f"CREATE DATABASE {name};")
            url = server.get_uri(name).replace("postgresql://", "postgresql+psycopg://", 1)
            upgrade_to_head(url)
            yield url
        finally:
            server.cleanup()


async def _ask(url: str, embedder: Any, questions: list[Question], args: Any) -> list[Result]:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from app.db import make_async_engine
    from app.rag.retrieve import Relevance, hybrid_search

    engine = make_async_engine(url)
    gate = Relevance(args.relevance_similarity, args.relevance_keyword_share)
    results = []
    try:
        async with async_sessionmaker(engine)() as session:
            for q in questions:
                started = time.perf_counter()
                vector = embedder.embed_one(q.question)
                common = dict(query=q.question, embedding=vector, candidates=args.candidates,
                              rrf_k=args.rrf_k)  # fmt: skip
                kept = await hybrid_search(
                    session,
                    top_k=args.top_k,
                    min_similarity=args.min_similarity,
                    relevance=gate,
                    **common,
                )
                raw = await hybrid_search(  # every candidate, for the best similarity
                    session, top_k=2 * args.candidates, min_similarity=-1.0, **common
                )
                results.append(Result.of(q, kept, raw, time.perf_counter() - started))
    finally:
        await engine.dispose()
    return results


if __name__ == "__main__":
    sys.exit(main())
