"""The embedded default database: a real PostgreSQL 16 with pgvector from the `pgserver` wheel.

Used when ``DATABASE_URL`` is unset (local development and tests). Production points
``DATABASE_URL`` at any PostgreSQL with the pgvector extension instead.
"""

from __future__ import annotations

from pathlib import Path


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or join) the embedded server under ``data_dir/pg`` and return its libpq URI."""
    # Imported here: the container image leaves `pgserver` out (production sets DATABASE_URL).
    import pgserver

    pgdata = (data_dir / "pg").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri()
