"""`python -m app`: migrate, ingest the docs (incrementally) and serve.

In production, `MIGRATE_ON_START=false` and `INGEST_ON_START=false` leave both to the
once-per-deploy release step, `python -m app.release`.

On the embedded default this needs nothing but the installed packages: PostgreSQL starts
from the `pgserver` wheel, the built-in local model answers, the bundled docs are ingested.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_settings import SettingsError

from app.db import database_url, make_sync_engine
from app.embedded_db import stop_embedded_postgres
from app.llm.pricing import UnpricedModel, build_price_book
from app.llm.routing import RoutingError, check_routing
from app.main import create_app
from app.migrate import upgrade_to_head
from app.observability.logs import configure_logging
from app.rag.embedder import TextEmbedder, load_embedder
from app.settings import Settings, get_settings
from app.settings.errors import configuration_error
from app.startup import (
    ReadyServer,
    exit_on_signals,
    phase,
    quiet_chatty_loggers,
    raise_open_file_limit,
    serve,
)
from ingest.corpus import ingest_corpus


def main() -> int:
    started = time.perf_counter()
    try:
        settings = get_settings()
    except (ValidationError, SettingsError) as err:
        print(configuration_error(err), file=sys.stderr)
        return 2
    try:
        build_price_book(settings)  # before migrating or ingesting: fail fast
    except UnpricedModel as err:
        problems = "\n".join(f"  - {problem}" for problem in str(err).split("; "))
        print(f"ragship cannot start: a model has no price:\n{problems}", file=sys.stderr)
        return 2
    try:
        check_routing(settings)
    except RoutingError as err:
        print(f"ragship cannot start: {err}", file=sys.stderr)
        return 2
    log_format = settings.log_format or ("text" if settings.env == "dev" else "json")
    configure_logging(level=settings.log_level, json_format=log_format == "json")
    quiet_chatty_loggers()
    raise_open_file_limit()  # two descriptors per live answer; workers inherit it
    try:  # before migrating or ingesting: a missing model fails fast
        with phase("embedding model"):
            embedder = load_embedder(settings)
    except FileNotFoundError as err:
        print(f"ragship cannot start: {err}", file=sys.stderr)
        return 2
    exit_on_signals()  # a signal now ends in `finally`, which stops the embedded PostgreSQL
    try:
        return _start_and_serve(settings, embedder, started)
    finally:
        if settings.database_url is None:
            with phase("embedded PostgreSQL stopped", stage="shutdown"):
                stop_embedded_postgres(settings.data_dir)


def _start_and_serve(settings: Settings, embedder: TextEmbedder, started: float) -> int:
    with phase("database" if settings.database_url else "embedded PostgreSQL"):
        url = database_url(settings)
    if settings.migrate_on_start:
        with phase("migrations"):
            upgrade_to_head(url)
    if settings.ingest_on_start and settings.docs_dir.is_dir():
        with phase(f"ingest of {settings.docs_dir}"):
            engine = make_sync_engine(url)
            try:
                ingest_corpus(settings, engine=engine, embedder=embedder)
            finally:
                engine.dispose()
    options: dict[str, Any] = {
        "log_config": None,  # keep our handlers (JSON in prod) for uvicorn's loggers too
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": int(settings.shutdown_grace_s),
    }
    if settings.workers > 1:
        # Each worker builds its own clients and embedder (`create_app()` reads the same
        # settings); everything they must agree on is in PostgreSQL and the shared store.
        del embedder
        logging.getLogger("ragship").info(
            "starting %d workers on http://%s:%d", settings.workers, settings.host, settings.port
        )
        uvicorn.run("app.__main__:worker_app", factory=True, workers=settings.workers, **options)
        return 0
    app = create_app(settings, embedder=embedder)
    return serve(ReadyServer(uvicorn.Config(app, **options), started=started))


def worker_app() -> FastAPI:
    """One worker's app when WEB_CONCURRENCY > 1 (uvicorn starts each in a new process)."""
    settings = get_settings()
    log_format = settings.log_format or ("text" if settings.env == "dev" else "json")
    configure_logging(level=settings.log_level, json_format=log_format == "json")
    return create_app(settings)


if __name__ == "__main__":
    sys.exit(main())
