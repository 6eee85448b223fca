"""Health: liveness (/healthz), readiness (/readyz) and LLM reachability (/health/llm)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.caps.ratelimit import STORE_ERRORS
from app.db import autocommit_connection
from app.deps import LLMHealthDep, ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness only: instant, touches no dependency, never costs money."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready to serve: the database and the rate-limit store answer."""
    result = {"status": "ok", "database": "ok", "rate_limit_store": "ok"}
    try:
        async with autocommit_connection(services.sessions) as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as err:
        result.update(status="unavailable", database=type(err).__name__)
    try:
        with anyio.fail_after(services.settings.rate_limit_store_timeout_s):
            await services.limiter.store.ping()
    except STORE_ERRORS as err:
        result.update(status="unavailable", rate_limit_store=type(err).__name__)
    return JSONResponse(result, status_code=200 if result["status"] == "ok" else 503)


@router.get("/health/llm", response_model=None)
async def llm_health(check: LLMHealthDep) -> JSONResponse:
    """A real minimal upstream call, cached for LLM_HEALTH_CACHE_S: polling it costs ~nothing."""
    health, cached = await check.check()
    body = {
        "status": "ok" if health.ok else "unavailable",
        "model": health.model,
        "latency_ms": round(health.latency_ms, 1),
        "detail": health.detail,
        "checked_at": health.checked_at.isoformat(),
        "cached": cached,
    }
    return JSONResponse(body, status_code=200 if health.ok else 503)
