"""`python -m ingest PATH... [--prune]`: ingest documents into the configured database.

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders to ingest")
    parser.add_argument(
        "--prune", action="store_true", help="remove documents whose files are gone"
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    try:
        url = database_url(settings)
        upgrade_to_head(url)
    except (SQLAlchemyError, ValueError) as err:
        cause = getattr(err, "orig", None) or err
        print(f"error: cannot use the database: {_first_line(cause)}", file=sys.stderr)
        return 2
    engine = make_sync_engine(url)
    embedder = load_embedder(settings)
    report = ingest_paths(
        args.paths,
        engine=engine,
        embedder=embedder,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        prune=args.prune,
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
