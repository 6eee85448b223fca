"""Bound request bodies before anything reads them: 413 past the limit for the path.

A declared Content-Length over the limit is refused before the app runs, without reading
the body. A body without one (chunked) is counted as it arrives and cut off at the limit:
the 413 goes out at once and the app sees a disconnected client. Without this, an anonymous
100 MB body is read and parsed (seconds of CPU, hundreds of MiB) before the 401.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.settings import Settings

KIB = 1024
# Pages, sign-in forms, health checks, static files: a sign-in form is well under 1 KiB.
OTHER_LIMIT = 16 * KIB
# The longest JSON escape of one character: an astral one written as two \uXXXX escapes.
_WORST_JSON_BYTES_PER_CHAR = 12


def body_limits(settings: Settings) -> dict[str, int]:
    """Bytes a request body may have, by path prefix (the longest matching prefix wins).

    The JSON API (chat, conversations, feedback, admin) gets 64 KiB, or more when
    MAX_MESSAGE_CHARS needs it: a longest question in its worst-case JSON encoding plus
    16 KiB for the other fields, so an over-long question still reaches the cap chain and
    gets its friendly "too long" answer instead of this bare 413.
    """
    question = _WORST_JSON_BYTES_PER_CHAR * settings.max_message_chars
    return {"/api/": max(64 * KIB, question + 16 * KIB), "/": OTHER_LIMIT}


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, limits: Mapping[str, int]) -> None:
        if "/" not in limits:
            raise ValueError("limits needs a '/' entry: the bound for every other path")
        self.app = app
        self.limits = sorted(limits.items(), key=lambda item: len(item[0]), reverse=True)

    def limit_for(self, path: str) -> int:
        return next(limit for prefix, limit in self.limits if path.startswith(prefix))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit)(scope, receive, send)
            return

        received = 0
        cut_off = False  # past the limit: the app gets no more of the body
        started = False  # the app has started its response
        replaced = False  # we sent the 413 instead: the app's own response is dropped

        async def counting_receive() -> Message:
            nonlocal received, cut_off, replaced
            if cut_off:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    cut_off = True
                    if not started:
                        replaced = True
                        await _too_large(limit)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counting_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed one; count the body anyway
    return None


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"Request body too large: at most {limit} bytes here.", "max_bytes": limit},
        status_code=413,
    )
