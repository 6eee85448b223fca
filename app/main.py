"""create_app() and its lifespan: the expensive clients are built once here and shared."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db import database_url, make_async_engine
from app.llm.client import LLMClient
from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.rag.embedder import Embedder
from app.routes import chat, health, pages
from app.routes.pages import STATIC_DIR
from app.services import Services
from app.settings import Settings, get_settings

log = logging.getLogger("ragship")


def create_app(settings: Settings | None = None, *, embedder: Embedder | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_async_engine(database_url(settings), pool_size=settings.db_pool_size)
        local_model = None
        base_url = settings.llm_base_url
        if base_url is None:
            local_model = BackgroundServer(
                create_local_model(token_delay_s=settings.local_model_token_delay_s)
            ).start()
            base_url = f"{local_model.url}/v1"
            log.info("using the built-in local model at %s", base_url)
        llm = LLMClient(
            base_url=base_url,
            api_key=settings.llm_api_key.get_secret_value(),
            model=settings.llm_model,
            timeout_s=settings.llm_timeout_s,
        )
        app.state.services = Services(
            settings=settings,
            sessions=async_sessionmaker(engine, expire_on_commit=False),
            embedder=embedder
            or Embedder(settings.embedding_model_path, batch_size=settings.embed_batch_size),
            llm=llm,
        )
        try:
            yield
        finally:
            await llm.close()
            await engine.dispose()
            if local_model is not None:
                local_model.stop()

    app = FastAPI(title="ragship", version="0.1.0", lifespan=lifespan)
    app.include_router(pages.router)
    app.include_router(chat.router)
    app.include_router(health.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
