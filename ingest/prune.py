"""Removing documents from the corpus: files gone from a folder, a corpus replaced, or all.

Each runs in one transaction; chunks go with their document (ON DELETE CASCADE). Sources
are the keys `ingest.pipeline.source_key` gives, and a root's key has no trailing slash.
"""

from __future__ import annotations

from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from app.models import Document
from ingest.keyword_statistics import refresh_keyword_statistics


def _under(source: str, prefixes: list[str]) -> bool:
    return any(source == p or source.startswith(p + "/") for p in prefixes)


def prune_all_but(prefixes: list[str], present: set[str], *, engine: Engine) -> tuple[int, int]:
    """Delete every document not in `present`: (deleted, of which outside `prefixes`)."""
    with Session(engine) as session, session.begin():
        sources = session.execute(select(Document.source)).scalars().all()
        gone = [s for s in sources if s not in present]
        if gone:
            session.execute(delete(Document).where(Document.source.in_(gone)))
    return len(gone), sum(not _under(s, prefixes) for s in gone)


def prune_under(prefixes: list[str], present: set[str], *, engine: Engine) -> int:
    """Delete the documents under `prefixes` that are not in `present` (their files are
    gone); returns how many."""
    with Session(engine) as session, session.begin():
        sources = session.execute(select(Document.source)).scalars().all()
        gone = [s for s in sources if _under(s, prefixes) and s not in present]
        if gone:
            session.execute(delete(Document).where(Document.source.in_(gone)))
    return len(gone)


def delete_corpus(engine: Engine) -> int:
    """Delete every document and its chunks: the corpus is empty. Returns how many."""
    with Session(engine) as session, session.begin():
        result = session.execute(delete(Document))
    refresh_keyword_statistics(engine)
    return int(getattr(result, "rowcount", 0) or 0)
