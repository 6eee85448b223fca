"""Run eval cases through the real chat path: the app over HTTP (sign-in, cap chain, retrieval,
the model, streaming), a real PostgreSQL with the corpus ingested, and the configured model
(the built-in local model unless told otherwise)."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
from evals.cases import CORPUS, ROOT, Case
from evals.metrics import Outcome
from ingest.chunker import heading_list, section_anchor
from ingest.pipeline import ingest_paths, source_key

_DOCUMENT_CHUNKS = text(
    "SELECT c.heading_path, c.text FROM chunks c JOIN documents d ON d.id = c.document_id "
    "WHERE d.source = :source ORDER BY c.ordinal"
)
# Settings that change scores are pinned to the code's defaults, so a developer's shell
# environment cannot move the results; the CLI overrides the ones worth trying.
_PINNED = (
    "chunk_tokens",
    "chunk_overlap",
    "retrieval_candidates",
    "rrf_k",
    "history_messages",
    "max_message_chars",
    "llm_max_tokens",
    "llm_temperature",
)


@dataclass
class EvalConfig:
    top_k: int = 5
    min_similarity: float = 0.25
    relevance_similarity: float = Settings.model_fields["relevance_similarity"].default
    relevance_keyword_share: float = Settings.model_fields["relevance_keyword_share"].default
    concurrency: int = 4
    embedding_model_path: Path | None = None
    llm_base_url: str | None = None  # None: the built-in local model, started in-process
    llm_api_key: str = "local"
    llm_model: str | None = None
    database_url: str | None = None  # None: a fresh embedded PostgreSQL in a temp folder


@dataclass
class Service:
    url: str  # the app
    database_url: str
    settings: Settings


@contextmanager
def eval_database(config: EvalConfig) -> Iterator[str]:
    """The given database, or a fresh embedded PostgreSQL that is deleted afterwards."""
    if config.database_url:
        url = config.database_url
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                url = "postgresql+psycopg://" + url[len(prefix) :]
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="ragship-eval-") as tmp:
        server = pgserver.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            name = f"eval_{uuid.uuid4().hex[:10]}"
            server.psql(f"CREATE DATABASE {name};")
            yield server.get_uri(name).replace("postgresql://", "postgresql+psycopg://", 1)
        finally:
            server.cleanup()


def eval_settings(config: EvalConfig, *, database_url: str, llm_base_url: str) -> Settings:
    values: dict[str, object] = {name: Settings.model_fields[name].default for name in _PINNED} | {
        "env": "dev",
        "dev_login": True,
        "database_url": database_url,
        "llm_base_url": llm_base_url,
        "llm_api_key": config.llm_api_key,
        "retrieval_top_k": config.top_k,
        "retrieval_min_similarity": config.min_similarity,
        "relevance_similarity": config.relevance_similarity,
        "relevance_keyword_share": config.relevance_keyword_share,
        # The caps are tested elsewhere; here they must never get in a case's way.
        "rate_limit_store": "memory",
        "rate_limit_requests": 100_000,
        "max_concurrent_streams": 1000,
        "user_daily_cap_usd": 1000,
        "global_daily_cap_usd": 1000,
        "monthly_budget_usd": 10_000,
        "max_request_cost_usd": 10,
        "status_probe_interval_s": 3600,
        "alert_interval_s": 3600,
        "response_cache": False,  # the suite measures the model, never a replayed answer
        "quality_sample_rate": 0,  # no production judge calls behind the suite's back
    }
    if config.llm_model:
        values["llm_model"] = config.llm_model
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@contextmanager
def chat_service(config: EvalConfig) -> Iterator[Service]:
    """A migrated database with the corpus ingested (incrementally), and the app serving it."""
    with eval_database(config) as db_url:
        upgrade_to_head(db_url)
        embedder = Embedder(config.embedding_model_path)
        local = None
        if config.llm_base_url is None:
            local = BackgroundServer(create_local_model()).start()
        try:
            base_url = f"{local.url}/v1" if local else str(config.llm_base_url)
            settings = eval_settings(config, database_url=db_url, llm_base_url=base_url)
            engine = make_sync_engine(db_url)
            try:
                report = ingest_paths(
                    CORPUS,
                    engine=engine,
                    embedder=embedder,
                    chunk_tokens=settings.chunk_tokens,
                    chunk_overlap=settings.chunk_overlap,
                )
            finally:
                engine.dispose()
            if report.errors:
                raise RuntimeError(f"the eval corpus did not ingest cleanly: {report.errors}")
            app = BackgroundServer(create_app(settings, embedder=embedder)).start()
            try:
                yield Service(url=app.url, database_url=db_url, settings=settings)
            finally:
                app.stop()
        finally:
            if local is not None:
                local.stop()


async def run_cases(base_url: str, cases: list[Case], *, concurrency: int) -> dict[str, Outcome]:
    """Every case, at most `concurrency` at once, each as a signed-in user would ask it."""
    async with httpx.AsyncClient(
        base_url=base_url, timeout=120, headers={"Origin": base_url}
    ) as http:
        signed = await http.post("/auth/dev-login", data={"email": "evals@localhost.test"})
        if signed.status_code != 303:
            raise RuntimeError(f"eval sign-in failed: {signed.status_code} {signed.text}")
        http.headers["X-CSRF-Token"] = (await http.get("/api/me")).json()["csrf_token"]
        bound = asyncio.Semaphore(concurrency)

        async def one(case: Case) -> tuple[str, Outcome]:
            async with bound:
                conversation: str | None = None
                for earlier in case.history:
                    before, conversation = await ask(http, earlier, conversation)
                    if before.status != 200:
                        return case.id, before
                outcome, _ = await ask(http, case.text, conversation)
                return case.id, outcome

        return dict(await asyncio.gather(*(one(c) for c in cases)))


async def ask(
    http: httpx.AsyncClient, question: str, conversation: str | None
) -> tuple[Outcome, str | None]:
    """POST /api/chat and read its event stream: (what came back, the conversation id)."""
    started = time.perf_counter()
    body = {"message": question, "conversation_id": conversation}
    async with http.stream("POST", "/api/chat", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            is_json = response.headers.get("content-type", "").startswith("application/json")
            detail = response.json().get("detail") if is_json else response.text[:200]
            outcome = Outcome(status=response.status_code, error=str(detail))
            outcome.total_ms = _ms(started)
            return outcome, conversation
        outcome = Outcome(status=200)
        event = "message"
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                if event == "meta":
                    conversation = data["conversation_id"]
                    outcome.prompt_version = data.get("prompt_version")
                elif event == "sources":
                    outcome.sources = [section_of(s) for s in data["sources"]]
                elif event == "token":
                    outcome.ttft_ms = outcome.ttft_ms or _ms(started)
                    outcome.answer += data["text"]
                elif event in ("done", "error"):
                    outcome.cost_usd = float(data.get("cost_usd") or 0)
                    outcome.model = data.get("model")
                    outcome.error = data.get("kind") if event == "error" else None
    outcome.total_ms = _ms(started)
    return outcome, conversation


def section_of(source: dict[str, str]) -> str:
    """A cited source as the section it belongs to, "path#anchor", the path relative to the
    repository: a section's later chunks (anchored ``anchor-2``, ...) name the section, so
    citing any chunk of an expected section is a hit.

    Ingest names files relative to the working directory it ran in, or absolute outside it.
    """
    path = Path(source["source"])
    absolute = path if path.is_absolute() else (Path.cwd() / path).resolve()
    try:
        name = absolute.relative_to(ROOT).as_posix()
    except ValueError:
        name = path.as_posix()
    return f"{name}#{_section_anchor(source['section'])}"


def _section_anchor(heading_path: str) -> str:
    return section_anchor(heading_list(heading_path))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def passage_texts(db_url: str, sections: list[str]) -> list[str]:
    """The text of each retrieved section ("path#anchor"), every chunk of it, for the judge."""
    engine = make_sync_engine(db_url)
    try:
        with engine.connect() as conn:
            texts = []
            for section in sections:
                path, _, anchor = section.partition("#")
                rows = conn.execute(_DOCUMENT_CHUNKS, {"source": source_key(ROOT / path)})
                chunks = [r.text for r in rows if _section_anchor(r.heading_path) == anchor]
                texts.append("\n".join(chunks))
            return texts
    finally:
        engine.dispose()
