"""Error responses that are always valid JSON, whatever the request carried.

FastAPI's own 422 echoes the offending input: a lone surrogate or a NaN in it makes the
error response itself crash (500). Here every echoed value is made JSON-safe first. A value
the database refuses despite the checks (`DataError`) is the client's fault: 400, not 500.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
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


NOT_JSON = "Send the body as JSON, with the header Content-Type: application/json."


def is_json_type(content_type: str) -> bool:
    """Whether FastAPI reads a body of this Content-Type as JSON: application/json or
    application/*+json, parameters ignored (with `strict_content_type`, its default, it
    reads no other as JSON)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _sent_another_type(request: Request, errors: Sequence[Any]) -> bool:
    """Whether a route whose body is one model got a body that was not read as JSON: no
    Content-Type or another one, and FastAPI found the body itself not an object. An empty
    body is a "missing" error instead, and JSON that is not an object came as JSON."""
    if is_json_type(request.headers.get("content-type", "")):
        return False
    return any(
        error.get("type") == "model_attributes_type" and tuple(error.get("loc", ())) == ("body",)
        for error in errors
    )


async def validation_error(request: Request, exc: Exception) -> Response:
    """422 with FastAPI's error list made JSON-safe; 415 with `NOT_JSON` when a route whose
    body is one model got a body of another type or none declared (curl's `-d` alone sends
    a form; `requests.post(data=...)` sends no Content-Type), which FastAPI reports only as
    "Input should be a valid dictionary or object"."""
    assert isinstance(exc, RequestValidationError)
    raw = exc.errors()
    if _sent_another_type(request, raw):
        return JSONResponse({"detail": NOT_JSON}, status_code=415)
    errors = [
        {k: json_safe(v) for k, v in error.items() if k in ("type", "loc", "msg", "input")}
        for error in raw
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
