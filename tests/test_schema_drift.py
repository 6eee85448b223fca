"""The ORM models (app/models/) describe the schema the Alembic migrations build.

Production runs the migrations; the models are their Python view. Two checks, each against
a fresh database migrated to head with the real migrations:

1. Alembic's autogenerate comparison (tables, columns, types, nullability, server defaults,
   index and unique-constraint columns, foreign keys) finds nothing to change.
2. What autogenerate does not compare (an index's method, operator class, WITH options,
   INCLUDE columns and partial predicate; check constraints; generated-column expressions;
   a column's storage) is compared in PostgreSQL's own words: a second, empty database
   gets the models' `Base.metadata.create_all`, and both databases' catalogs must say the
   same.

No object is left out of either comparison. The migrations' SQL functions (ragship_reserve,
ragship_take, ...) have no model and are not looked at: they are not tables.
"""

from __future__ import annotations

import pprint
import uuid
from collections.abc import Callable, Iterator

import pgserver
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from app.db import make_sync_engine
from app.models import Base

# Every index, with the statement that would create it (method, operator class, options,
# INCLUDE and predicate all in it).
_INDEXES = text(
    "SELECT tablename, indexname, indexdef FROM pg_indexes "
    "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
)
# Every primary key, unique, check and foreign-key constraint, as PostgreSQL prints it.
_CONSTRAINTS = text(
    "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
    "FROM pg_constraint c WHERE c.connamespace = 'public'::regnamespace "
    "AND c.conrelid <> 0 AND c.conrelid::regclass::text <> 'alembic_version'"
)
# Every column: type, NOT NULL, default and generation expression (column order is left out:
# a migration's ADD COLUMN appends where a model may declare it in the middle).
_COLUMNS = text(
    "SELECT a.attrelid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod), "
    "a.attnotnull, a.attgenerated, a.attstorage, pg_get_expr(d.adbin, d.adrelid) "
    "FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid "
    "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
    "WHERE t.relnamespace = 'public'::regnamespace AND t.relkind = 'r' "
    "AND t.relname <> 'alembic_version' AND a.attnum > 0 AND NOT a.attisdropped"
)


def autogenerate_diff(conn: Connection) -> list[object]:
    """Alembic's differences between the database on `conn` and `Base.metadata`: [] when
    they agree; otherwise its operation tuples ('add_column', ...), as `alembic revision
    --autogenerate` would turn into a migration."""
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def catalog(engine: Engine) -> dict[str, set[tuple[object, ...]]]:
    """The database's indexes, constraints and columns as rows of PostgreSQL's catalog text,
    keyed 'indexes', 'constraints', 'columns'."""
    with engine.connect() as conn:
        return {
            name: {tuple(row) for row in conn.execute(query)}
            for name, query in (
                ("indexes", _INDEXES),
                ("constraints", _CONSTRAINTS),
                ("columns", _COLUMNS),
            )
        }


@pytest.fixture(scope="module")
def migrated(new_database: Callable[[], str]) -> Iterator[Engine]:
    """A fresh database at the head of the real migrations."""
    engine = make_sync_engine(new_database())
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def from_models(pg_server: pgserver.PostgresServer) -> Iterator[Engine]:
    """A fresh database holding only what `Base.metadata.create_all` builds."""
    name = f"models_{uuid.uuid4().hex[:12]}"
    pg_server.psql(f"CREATE DATABASE {name};")
    engine = make_sync_engine(
        pg_server.get_uri(name).replace("postgresql://", "postgresql+psycopg://", 1)
    )
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            Base.metadata.create_all(conn)
        yield engine
    finally:
        engine.dispose()
        pg_server.psql(f"DROP DATABASE {name} WITH (FORCE);")


def test_autogenerate_finds_no_difference_between_models_and_migrations(
    migrated: Engine,
) -> None:
    with migrated.connect() as conn:
        diff = autogenerate_diff(conn)
    assert not diff, "models differ from the migrations:\n" + pprint.pformat(diff, width=120)


def test_models_build_the_indexes_constraints_and_columns_the_migrations_build(
    migrated: Engine, from_models: Engine
) -> None:
    by_migrations, by_models = catalog(migrated), catalog(from_models)
    assert by_migrations["columns"], "no columns read: the catalog query is wrong"
    for kind in ("indexes", "constraints", "columns"):
        only_migrations = sorted(by_migrations[kind] - by_models[kind], key=str)
        only_models = sorted(by_models[kind] - by_migrations[kind], key=str)
        assert not (only_migrations or only_models), (
            f"{kind} differ.\nonly the migrations build:\n{pprint.pformat(only_migrations)}"
            f"\nonly the models build:\n{pprint.pformat(only_models)}"
        )
