"""The long-lived clients one replica builds at start and shares between requests."""

from __future__ import annotations

from dataclasses import dataclass, field

from authlib.integrations.starlette_client import StarletteOAuth2App
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.recent import RecentCredentials
from app.caps.overload import AdmissionGate
from app.caps.ratelimit import RateLimiter
from app.guardrails.attacks import AttackIndex
from app.llm.client import LLMClient
from app.llm.pricing import PriceBook
from app.rag.corpus_fit import RECHECK_S, CorpusFit
from app.rag.embedder import TextEmbedder
from app.rag.query_embedding import QueryEmbeddings
from app.settings import Settings


@dataclass(frozen=True)
class Services:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    embedder: TextEmbedder
    llm: LLMClient
    prices: PriceBook
    oidc: StarletteOAuth2App | None
    limiter: RateLimiter
    tracer: Tracer
    attacks: AttackIndex | None = None  # known attack prompts (guardrails)
    # Chat admissions in flight in this worker (MAX_INFLIGHT_ADMISSIONS, app/caps/overload.py)
    gate: AdmissionGate = field(default_factory=lambda: AdmissionGate(128))
    # Whether the corpus fits in the keyword pool, as this worker's last search saw (a hint
    # that picks between two statements ranking the same passages: app/rag/corpus_fit.py),
    # checked again at most every RECHECK_S
    corpus_fit: CorpusFit = field(default_factory=lambda: CorpusFit(recheck_s=RECHECK_S))
    # Query embeddings in flight in this worker: a chat's starts before its sign-in when
    # none is (app/rag/query_embedding.py)
    query_embeddings: QueryEmbeddings = field(default_factory=QueryEmbeddings)
    # Credentials signed in on this worker lately: the early embedding's hint (app/auth/recent.py)
    recent_credentials: RecentCredentials = field(default_factory=RecentCredentials)
