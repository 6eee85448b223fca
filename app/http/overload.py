"""A database pool that runs dry is overload, not a bug: 503 with Retry-After, never a 500.

When every connection of a worker's pool is busy for `DB_POOL_TIMEOUT_S`, SQLAlchemy
raises `sqlalchemy.exc.TimeoutError`; the request is refused as the overload it is. A
database that cannot serve (a dropped connection, a restart, a refused connection:
`sqlalchemy.exc.OperationalError`) is a service briefly unavailable, also 503 with
Retry-After; the pool has already replaced a dropped connection, so a retry gets a new one.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.caps.refusal import OVERLOADED

DATABASE_UNAVAILABLE = "database_unavailable"  # the `layer` of its 503

log = logging.getLogger("ragship.http")
POOL_RETRY_AFTER_S = 2  # a pool that stayed full for DB_POOL_TIMEOUT_S drains in seconds


def unavailable(detail: str, *, layer: str, retry_after_s: int) -> Response:
    """The 503 a refusal of the whole service gets: JSON with the person's message, the
    layer and the wait, and the Retry-After header (the cap chain's refusals' shape)."""
    body = {"detail": detail, "layer": layer, "retry_after_s": retry_after_s}
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(retry_after_s)})


async def pool_timeout(request: Request, exc: Exception) -> Response:
    log.warning("database pool exhausted on %s %s: %s", request.method, request.url.path, exc)
    return unavailable(
        "The assistant is busy right now. Please try again in a moment.",
        layer=OVERLOADED,
        retry_after_s=POOL_RETRY_AFTER_S,
    )


DATABASE_RETRY_AFTER_S = 1  # a dropped connection is replaced at once; a restart takes seconds


async def database_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OperationalError)
    log.error(
        "database unavailable on %s %s (connection %s): %s",
        request.method,
        request.url.path,
        "replaced" if exc.connection_invalidated else "kept",
        exc.orig,
    )
    return unavailable(
        "The assistant cannot reach its database right now. Please try again.",
        layer=DATABASE_UNAVAILABLE,
        retry_after_s=DATABASE_RETRY_AFTER_S,
    )


HANDLERS: dict[type[Exception], Any] = {
    PoolTimeout: pool_timeout,
    OperationalError: database_unavailable,
}
