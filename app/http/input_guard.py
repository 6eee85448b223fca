"""Refuse requests whose path, query, our cookies or the headers we read carry text that
PostgreSQL or JSON cannot hold (NUL and other C0 controls, invalid UTF-8): 400 with a JSON
body, before any route, dependency or database sees them.

Request bodies are cleaned field by field instead (`app.textclean.CleanStr`), and a body
that fails validation gets a 422 that is itself valid JSON (`app.http.errors`).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, unquote_to_bytes

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from app.textclean import is_clean

# The cookies and headers ragship reads; others are none of its business.
COOKIES = ("ragship_session", "ragship_signin")
HEADERS = (b"origin", b"referer", b"x-csrf-token", b"authorization", b"host")
MESSAGE = (
    "The request contains characters that are not allowed (control characters or invalid text)."
)


def _text_ok(raw: bytes) -> bool:
    try:
        return is_clean(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return False


def request_is_clean(scope: Scope) -> bool:
    """True when the path, query, our cookies and the headers we read are clean text."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    if not _text_ok(unquote_to_bytes(raw_path)):
        return False
    query = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
        if not (_text_ok(key.encode("latin-1")) and _text_ok(value.encode("latin-1"))):
            return False
    for name, value in scope.get("headers", []):
        if name in HEADERS and not _text_ok(value):
            return False
        if name == b"cookie":
            cookies = cookie_parser(value.decode("latin-1"))
            if any(not is_clean(cookies[c]) for c in COOKIES if c in cookies):
                return False
    return True


class InputGuardMiddleware:
    """Pure ASGI (streaming responses pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or request_is_clean(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": MESSAGE}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
