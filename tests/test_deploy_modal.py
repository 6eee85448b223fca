"""The Modal app imports with no token and no network, and its functions are as documented.

`Function.info()` reads the options of a locally defined function without contacting Modal;
`Function.local()` runs its body in this process, here against the test PostgreSQL.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pgserver
import pytest

from app.db import make_sync_engine
from app.settings import Settings, get_settings
from tests.conftest import ROOT, scalar
from tests.test_release import _empty_database

MODAL_APP = ROOT / "infra" / "modal" / "ragship_modal.py"
SECRET = "modal.Secret.from_name('ragship')"


@pytest.fixture(scope="module")
def modal_app() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ragship_modal", MODAL_APP)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_web_function_serves_the_app_within_modals_request_limit(
    modal_app: ModuleType,
) -> None:
    info = modal_app.web.info()
    assert info.web_info is not None  # an ASGI web endpoint
    assert info.timeout == modal_app.MODAL_WEB_REQUEST_LIMIT_S == 150
    assert info.concurrency_info.max_inputs == 100
    assert info.secrets == [SECRET]
    # The longest answer, retries included, ends before Modal cuts the request.
    settings = Settings(_env_file=None, **modal_app.WEB_TIME_LIMITS)  # type: ignore[call-arg]
    assert settings.llm_total_timeout_s + settings.llm_retry_budget_s < info.timeout


def test_release_and_ingest_functions_have_room_and_the_corpus(modal_app: ModuleType) -> None:
    release = modal_app.release.info()
    assert release.web_info is None and release.secrets == [SECRET]
    assert release.timeout == 3600
    shard = modal_app.ingest_shard.info()
    assert set(shard.volumes) == {modal_app.CORPUS} and shard.secrets == [SECRET]
    corpus = modal_app.ingest_corpus.info()
    assert set(corpus.volumes) == {modal_app.CORPUS} and corpus.timeout >= shard.timeout


def test_the_corpus_splits_into_shards(modal_app: ModuleType, tmp_path: Path) -> None:
    for n in range(5):
        (tmp_path / f"doc{n}.md").write_text(f"# Doc {n}\n\nText {n}.\n")
    (tmp_path / "skip.bin").write_bytes(b"\0")
    shards = modal_app.shards(tmp_path, size=2)
    assert [len(shard) for shard in shards] == [2, 2, 1]
    assert sorted(Path(p).name for shard in shards for p in shard) == [
        f"doc{n}.md" for n in range(5)
    ]


@pytest.fixture
def settings_from_env(
    monkeypatch: pytest.MonkeyPatch, pg_server: pgserver.PostgresServer
) -> Iterator[str]:
    """What the `ragship` secret gives a Modal container: settings in the environment."""
    url = _empty_database(pg_server)
    from app.migrate import upgrade_to_head

    upgrade_to_head(url)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_shards_embedded_apart_land_in_the_same_database(
    modal_app: ModuleType, settings_from_env: str, tmp_path: Path
) -> None:
    for n in range(3):
        (tmp_path / f"doc{n}.md").write_text(f"# Doc {n}\n\nShard text number {n}.\n")
    # Modal warns that the corpus volume is not mounted locally: the files are in tmp_path.
    with pytest.warns(UserWarning, match="executing locally"):
        reports = [modal_app.ingest_shard.local(shard) for shard in modal_app.shards(tmp_path, 2)]
    assert [report["ingested"] for report in reports] == [2, 1]
    assert all(report["errors"] == [] for report in reports)
    engine = make_sync_engine(settings_from_env)
    try:
        assert scalar(engine, "SELECT count(*) FROM documents") == 3
        assert scalar(engine, "SELECT count(*) FROM chunks WHERE embedding IS NULL") == 0
    finally:
        engine.dispose()
