"""`python -m ingest PATH... [--prune | --only]`, `python -m ingest --reset [PATH...]`:
ingest documents into the configured database.

`--prune` deletes the documents under PATHs whose files are gone; `--only` makes PATHs the
whole corpus (every other document is deleted: a corpus ingested earlier, say); `--reset`
empties the corpus first (with no PATH, it only empties it).

Each file that cannot be ingested is named on stderr with the reason; the others are
still ingested. Exit status: 0 when every file was ingested or unchanged, 1 when one or
more files failed, 2 when nothing could be done (bad arguments, or a database that cannot
be reached or migrated).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from app.db import database_url, make_sync_engine
from app.migrate import upgrade_to_head
from app.rag.embedder import load_embedder
from app.settings import get_settings
from ingest.pipeline import ingest_paths
from ingest.prune import delete_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders to ingest")
    parser.add_argument(
        "--prune", action="store_true", help="remove documents under PATHs whose files are gone"
    )
    parser.add_argument(
        "--only",
        action="store_true",
        help="PATHs are the whole corpus: remove every document not under them",
    )
    parser.add_argument(
        "--reset", action="store_true", help="empty the corpus first (no PATH: just empty it)"
    )
    args = parser.parse_args(argv)
    if not args.paths and not args.reset:
        parser.error("give at least one PATH (or --reset to empty the corpus)")

    settings = get_settings()
    try:
        url = database_url(settings)
        upgrade_to_head(url)
    except (SQLAlchemyError, ValueError) as err:
        cause = getattr(err, "orig", None) or err
        print(f"error: cannot use the database: {_first_line(cause)}", file=sys.stderr)
        return 2
    engine = make_sync_engine(url)
    if args.reset:
        print(f"reset: {delete_corpus(engine)} documents deleted")
        if not args.paths:
            engine.dispose()
            return 0
    embedder = load_embedder(settings)
    report = ingest_paths(
        args.paths,
        engine=engine,
        embedder=embedder,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        prune=args.prune,
        whole_corpus=args.only,
        progress=sys.stderr.isatty(),
    )
    for source, reason in report.errors:
        print(f"error: {source}: {reason}", file=sys.stderr)
    print(report.summary())
    engine.dispose()
    return 1 if report.errors else 0


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
