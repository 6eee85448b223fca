"""Liveness and readiness probes. Neither ever calls the LLM or costs money."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(services: ServicesDep) -> JSONResponse:
    try:
        async with services.sessions() as session:
            await session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as err:
        return JSONResponse(
            {"status": "unavailable", "database": type(err).__name__}, status_code=503
        )
    return JSONResponse({"status": "ok", "database": "ok"})
