"""`python -m ingest PATH... [--prune]`: ingest documents into the configured database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.db import database_url, make_sync_engine
from app.migrate import upgrade_to_head
from app.rag.embedder import Embedder
from app.settings import get_settings
from ingest.pipeline import ingest_paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help="files or folders to ingest")
    parser.add_argument(
        "--prune", action="store_true", help="remove documents whose files are gone"
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    url = database_url(settings)
    upgrade_to_head(url)
    engine = make_sync_engine(url)
    embedder = Embedder(settings.embedding_model_path, batch_size=settings.embed_batch_size)
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


if __name__ == "__main__":
    sys.exit(main())
