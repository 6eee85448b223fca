"""DOCS_DIR is the whole corpus: what `python -m app` and the release step ingest.

Documents that are not under DOCS_DIR (an earlier DOCS_DIR's, say) are deleted, and their
number is logged, unless INGEST_KEEP_OTHERS=true keeps what was ingested by hand with
`python -m ingest`. See docs/ingest.md#the-corpus-is-docs_dir.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from app.rag.embedder import TextEmbedder
from app.settings import Settings
from ingest.pipeline import IngestReport, ingest_paths

log = logging.getLogger("ragship.ingest")


def ingest_corpus(settings: Settings, *, engine: Engine, embedder: TextEmbedder) -> IngestReport:
    """Ingest DOCS_DIR incrementally and prune to it; logs each failed file and a summary.

    The caller checks that DOCS_DIR is a folder: a missing one prunes nothing."""
    report = ingest_paths(
        [settings.docs_dir],
        engine=engine,
        embedder=embedder,
        chunk_tokens=settings.chunk_tokens,
        chunk_overlap=settings.chunk_overlap,
        prune=True,
        whole_corpus=not settings.ingest_keep_others,
    )
    # A file that cannot be ingested is logged and skipped: the app serves the rest.
    for source, reason in report.errors:
        log.warning("ingest: %s not ingested: %s", source, reason)
    if report.outside:
        log.warning(
            "ingest: removed %d documents outside DOCS_DIR=%s (an earlier corpus; "
            "INGEST_KEEP_OTHERS=true keeps them)",
            report.outside,
            settings.docs_dir,
        )
    log.info("ingest: %s", report.summary())
    return report
