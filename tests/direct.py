"""The services one replica builds, for tests that call the money path's functions directly
(the cap chain, settlement, alerts) against the real PostgreSQL: no app, no embedding model.

Mutation testing starts a pytest session per mutant (docs/mutation.md); a test through the
app pays about a minute of set-up (loading the model, ingesting the corpus), these none.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from genai_prices.data_snapshot import get_snapshot
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.caps.ratelimit import RateLimiter
from app.caps.redis_store import open_store
from app.db import make_async_engine
from app.llm.client import LLMClient
from app.llm.pricing import build_price_book
from app.llm.routing import ARM_MAIN, Route
from app.observability.tracing import build_tracing
from app.prepare import PreparedChat
from app.rag.embedder import Embedder
from app.rag.prompt import PROMPT_VERSION
from app.services import Services
from app.tokens import count_tokens
from tests.conftest import make_settings

# What these tests load lazily, loaded at import: mutmut forks each mutant's session from a
# process that imported the tests, so the tokenizer and the price table load once a run,
# not once a mutant (about 1.5 s each on a loaded 2-core machine).
count_tokens("warm up")
get_snapshot()

# An upstream nothing listens on: these tests never call the model unless they pass one.
NO_UPSTREAM = "http://127.0.0.1:9/v1"


@asynccontextmanager
async def direct_services(db_url: str, **overrides: object) -> AsyncIterator[Services]:
    """Services on the database at ``db_url`` with these settings (the rate-limit store is
    memory unless ``rate_limit_store`` names a Redis). The embedder is absent (None): the functions these tests call never embed."""
    settings = make_settings(**{"database_url": db_url, "llm_base_url": NO_UPSTREAM, **overrides})
    engine = make_async_engine(db_url)
    assert settings.llm_base_url is not None
    llm = LLMClient(base_url=settings.llm_base_url, api_key="unused", settings=settings)
    store = open_store(settings)
    try:
        yield Services(
            settings=settings,
            sessions=async_sessionmaker(engine, expire_on_commit=False),
            embedder=cast(Embedder, None),
            llm=llm,
            prices=build_price_book(settings),
            oidc=None,
            limiter=RateLimiter(store, settings),
            tracer=build_tracing(settings)[0],
        )
    finally:
        await store.close()
        await llm.close()
        await engine.dispose()


def prepared_question(
    user: uuid.UUID, question: str, model: str, *, without_model: bool = False
) -> PreparedChat:
    """A first-turn answer to ``question`` with nothing retrieved, ready for `admit` and
    `stream_answer`: the prompt is the question alone, answered by ``model`` (or, with
    ``without_model``, by the local "I don't know": no upstream is needed)."""
    return PreparedChat(
        user_id=user,
        conversation_id=uuid.uuid4(),
        is_new_conversation=True,
        question=question,
        trace_id=uuid.uuid4().hex,
        passages=[],
        messages=[{"role": "user", "content": question}],
        route=Route(ARM_MAIN, model, PROMPT_VERSION, (model,)),
        without_model=without_model,
    )
