"""A database pool that runs dry is overload, not a bug: 503 with Retry-After, never a 500.

When every connection of a worker's pool is busy for `DB_POOL_TIMEOUT_S`, SQLAlchemy
raises `sqlalchemy.exc.TimeoutError`; the request is refused as the overload it is.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.caps.refusal import OVERLOADED

log = logging.getLogger("ragship.http")
POOL_RETRY_AFTER_S = 2  # a pool that stayed full for DB_POOL_TIMEOUT_S drains in seconds


async def pool_timeout(request: Request, exc: Exception) -> Response:
    log.warning("database pool exhausted on %s %s: %s", request.method, request.url.path, exc)
    body = {
        "detail": "The assistant is busy right now. Please try again in a moment.",
        "layer": OVERLOADED,
        "retry_after_s": POOL_RETRY_AFTER_S,
    }
    headers = {"Retry-After": str(POOL_RETRY_AFTER_S)}
    return JSONResponse(body, status_code=503, headers=headers)


HANDLERS: dict[type[Exception], Any] = {PoolTimeout: pool_timeout}
