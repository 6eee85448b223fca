"""Alembic environment: the URL comes from Settings (or the caller's config), never from here."""

from __future__ import annotations

from sqlalchemy import engine_from_config, pool, text

from alembic import context
from app.db import database_url
from app.migrate import MIGRATION_LOCK_ID
from app.models import Base
from app.settings import get_settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or database_url(get_settings())


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(
        {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with connectable.connect() as connection:
        # Concurrent migrations (replicas or release jobs starting together) serialise: the
        # second waits here, then finds the database at head. A session lock: it survives the
        # commit below and ends when the connection closes.
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
