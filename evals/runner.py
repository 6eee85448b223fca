"""Run eval cases through the real chat path: the app over HTTP, a real PostgreSQL with the
docs ingested, and the configured model (the built-in local model unless told otherwise)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pgserver
from sqlalchemy import text

from app.db import make_sync_engine
from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.main import create_app
from app.migrate import upgrade_to_head
from app.rag.embedder import Embedder
from app.settings import Settings
from evals.cases import FIXTURES, ROOT, Case
from evals.metrics import Outcome
from ingest.pipeline import ingest_paths

CORPUS = [ROOT / "docs", FIXTURES]
_SECTION_TEXT = text(
    "SELECT c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
    "WHERE d.source = :source AND c.anchor = :anchor ORDER BY c.ordinal"
)


@dataclass
class EvalConfig:
    top_k: int = 5
    min_similarity: float = 0.25
    concurrency: int = 4
    embedding_model_path: Path | None = None
    llm_base_url: str | None = None  # None: the built-in local model
    llm_api_key: str = "local"
    llm_model: str | None = None
    overrides: dict[str, object] = field(default_factory=dict)


@contextmanager
def chat_service(config: EvalConfig) -> Iterator[tuple[str, str]]:
    """A fresh database with the corpus ingested, and the app serving it.

    Yields (app URL, database URL).
    """
    with tempfile.TemporaryDirectory(prefix="ragship-eval-") as tmp:
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        local = None
        app = None
        try:
            name = f"eval_{uuid.uuid4().hex[:10]}"
            server.psql(f"CREATE DATABASE {name};")
            url = server.get_uri(name).replace("postgresql://", "postgresql+psycopg://", 1)
            upgrade_to_head(url)
            embedder = Embedder(config.embedding_model_path)
            engine = make_sync_engine(url)
            ingest_paths(
                CORPUS, engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40
            )
            engine.dispose()
            base_url = config.llm_base_url
            if base_url is None:
                local = BackgroundServer(create_local_model()).start()
                base_url = f"{local.url}/v1"
            values: dict[str, object] = {
                "env": "dev",
                "database_url": url,
                "llm_base_url": base_url,
                "llm_api_key": config.llm_api_key,
                "retrieval_top_k": config.top_k,
                "retrieval_min_similarity": config.min_similarity,
                "rate_limit_requests": 100_000,
                "max_concurrent_streams": 1000,
                "user_daily_cap_usd": 1000,
                "status_probe_interval_s": 3600,
                "alert_interval_s": 3600,
                **config.overrides,
            }
            if config.llm_model:
                values["llm_model"] = config.llm_model
            settings = Settings(_env_file=None, **values)  # type: ignore[arg-type]
            app = BackgroundServer(create_app(settings, embedder=embedder)).start()
            yield app.url, url
        finally:
            if app is not None:
                app.stop()
            if local is not None:
                local.stop()
            server.cleanup()


async def run_cases(base_url: str, cases: list[Case], *, concurrency: int) -> dict[str, Outcome]:
    async with httpx.AsyncClient(
        base_url=base_url, timeout=120, headers={"Origin": base_url}
    ) as http:
        signed = await http.post("/auth/dev-login", data={"email": "evals@localhost.test"})
        if signed.status_code != 303:
            raise RuntimeError(f"eval sign-in failed: {signed.status_code}")
        http.headers["X-CSRF-Token"] = (await http.get("/api/me")).json()["csrf_token"]
        gate = asyncio.Semaphore(concurrency)

        async def one(case: Case) -> tuple[str, Outcome]:
            async with gate:
                conversation: str | None = None
                for earlier in case.history:
                    outcome, conversation = await _ask(http, earlier, conversation)
                outcome, _ = await _ask(http, case.text, conversation)
                return case.id, outcome

        return dict(await asyncio.gather(*(one(c) for c in cases)))


async def _ask(
    http: httpx.AsyncClient, question: str, conversation: str | None
) -> tuple[Outcome, str | None]:
    started = time.perf_counter()
    body = {"message": question, "conversation_id": conversation}
    async with http.stream("POST", "/api/chat", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            detail = (
                response.json().get("detail")
                if response.headers.get("content-type", "").startswith("application/json")
                else None
            )
            return Outcome(
                status=response.status_code, error=str(detail), total_ms=_ms(started)
            ), conversation
        outcome = Outcome(status=200)
        name = "message"
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                if name == "meta":
                    conversation = data["conversation_id"]
                elif name == "sources":
                    outcome.sources = [
                        f"{s['source']}#{s['url'].partition('#')[2]}" for s in data["sources"]
                    ]
                elif name == "token":
                    outcome.ttft_ms = outcome.ttft_ms or _ms(started)
                    outcome.answer += data["text"]
                elif name in ("done", "error"):
                    outcome.cost_usd = float(data.get("cost_usd", 0))
                    outcome.error = data.get("kind") if name == "error" else None
    outcome.total_ms = _ms(started)
    return outcome, conversation


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def passage_texts(db_url: str, sources: list[str]) -> list[str]:
    """The text of each retrieved section ("path#anchor"), for the judge."""
    engine = make_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            texts = []
            for source in sources:
                path, _, anchor = source.partition("#")
                rows = conn.execute(_SECTION_TEXT, {"source": path, "anchor": anchor}).scalars()
                texts.append("\n".join(rows))
            return texts
    finally:
        engine.dispose()
