"""`python -m app.release`: the once-per-deploy step: migrate, then ingest DOCS_DIR.

Production targets run this as their release command (Fly's `release_command`, the compose
`migrate` service, Modal's `release` function) and start replicas with
`MIGRATE_ON_START=false` and `INGEST_ON_START=false`, so replicas never race on either.
Migrations hold a PostgreSQL advisory lock (alembic/env.py), so two releases serialise.
"""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError
from pydantic_settings import SettingsError

from app.db import database_url, make_sync_engine
from app.migrate import upgrade_to_head
from app.observability.logs import configure_logging
from app.rag.embedder import load_embedder
from app.settings import Settings, get_settings
from app.settings.errors import configuration_error
from ingest.corpus import ingest_corpus


def release(settings: Settings) -> int:
    """Migrate to head and ingest DOCS_DIR incrementally: DOCS_DIR is the whole corpus."""
    log = logging.getLogger("ragship.release")
    url = database_url(settings)
    upgrade_to_head(url)
    log.info("release: database at head")
    if not settings.docs_dir.is_dir():
        log.info("release: DOCS_DIR %s is not a folder: nothing to ingest", settings.docs_dir)
        return 0
    engine = make_sync_engine(url)
    try:
        ingest_corpus(settings, engine=engine, embedder=load_embedder(settings))
    finally:
        engine.dispose()
    return 0


def main() -> int:
    try:
        settings = get_settings()
    except (ValidationError, SettingsError) as err:
        print(configuration_error(err), file=sys.stderr)
        return 2
    log_format = settings.log_format or ("text" if settings.env == "dev" else "json")
    configure_logging(level=settings.log_level, json_format=log_format == "json")
    return release(settings)


if __name__ == "__main__":
    sys.exit(main())
