"""The once-per-deploy release step: migrations serialise under a lock, then ingest runs."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pgserver
from sqlalchemy import text

from app.db import make_sync_engine
from app.migrate import MIGRATION_LOCK_ID, upgrade_to_head
from app.release import release
from tests.conftest import _sqlalchemy_url, eventually, make_settings, scalar


def _empty_database(pg_server: pgserver.PostgresServer) -> str:
    name = f"r_{uuid.uuid4().hex[:12]}"
    pg_server.psql(f"CREATE DATABASE {name};")
    return _sqlalchemy_url(pg_server.get_uri(name))


def test_release_migrates_then_ingests_docs_dir(
    pg_server: pgserver.PostgresServer, tmp_path: Path
) -> None:
    url = _empty_database(pg_server)
    (tmp_path / "guide.md").write_text("# Deploying\n\nRun make deploy with a target.\n")
    settings = make_settings(database_url=url, docs_dir=tmp_path)
    assert release(settings) == 0
    engine = make_sync_engine(url)
    try:
        assert scalar(engine, "SELECT count(*) FROM alembic_version") == 1
        sources = scalar(engine, "SELECT string_agg(source, ',') FROM documents")
        assert sources == f"{tmp_path.name}/guide.md"  # relative to the corpus, never absolute
        assert release(settings) == 0  # a second deploy: nothing to do, nothing breaks
        assert scalar(engine, "SELECT count(*) FROM documents") == 1
    finally:
        engine.dispose()


def test_a_second_migration_waits_for_the_first(pg_server: pgserver.PostgresServer) -> None:
    url = _empty_database(pg_server)
    engine = make_sync_engine(url)
    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    try:
        with engine.connect() as holder:  # plays a replica that is migrating right now
            holder.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            second = threading.Thread(target=upgrade_to_head, args=(url,))
            second.start()
            eventually(lambda: scalar(engine, waiting) == 1, what="the second migration to wait")
            assert second.is_alive()
            assert scalar(engine, "SELECT to_regclass('alembic_version')") is None
            holder.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            second.join(timeout=120)
        assert not second.is_alive()
        assert scalar(engine, "SELECT count(*) FROM alembic_version") == 1
    finally:
        engine.dispose()
