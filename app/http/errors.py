"""Error responses that are always valid JSON, whatever the request carried.

FastAPI's own 422 echoes the offending input: a lone surrogate or a NaN in it makes the
error response itself crash (500). Here every echoed value is made JSON-safe first. A value
the database refuses despite the checks (`DataError`) is the client's fault: 400, not 500.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError

from app.textclean import clean_text

log = logging.getLogger("ragship.http")


def json_safe(value: Any) -> Any:
    """`value` with every string cleaned, bytes decoded, non-finite floats as strings and
    anything else unknown as its (cleaned) repr: always serialisable by `json.dumps`."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return clean_text(value.decode("utf-8", "replace"))
    if isinstance(value, dict):
        return {str(json_safe(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return clean_text(repr(value))


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {k: json_safe(v) for k, v in error.items() if k in ("type", "loc", "msg", "input")}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)


async def data_error(request: Request, exc: Exception) -> Response:
    log.warning(
        "the database refused a value from %s %s: %s", request.method, request.url.path, exc
    )
    detail = "The request contains a value that cannot be stored (too large or malformed)."
    return JSONResponse({"detail": detail}, status_code=400)


HANDLERS: dict[type[Exception], Any] = {
    RequestValidationError: validation_error,
    DataError: data_error,
}
