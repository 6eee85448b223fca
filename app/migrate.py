"""Apply Alembic migrations programmatically (used by `make migrate`, start-up and tests)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command

ROOT = Path(__file__).resolve().parent.parent
# Any fixed number, the same everywhere: alembic/env.py holds pg_advisory_lock on it while
# it migrates.
MIGRATION_LOCK_ID = 7_346_182_014


def upgrade_to_head(url: str) -> None:
    upgrade_to(url, "head")


def upgrade_to(url: str, revision: str) -> None:
    """Migrate the database at `url` up to `revision` ("head", or a number such as "0022")."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)
