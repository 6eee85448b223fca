"""HTML error pages for people: a browser that follows a bad link or opens a page it may
not see gets a styled page with a way back, not raw JSON. API clients (paths under /api/,
or requests that do not accept HTML) keep the JSON `{"detail": ...}` body."""

from __future__ import annotations

from html import escape

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from app.routes.html import page

_TITLES = {
    403: ("Not allowed", "You do not have access to this page."),
    404: ("Page not found", "There is nothing at this address."),
    405: ("Not allowed", "This page cannot be used that way."),
}


def _wants_html(request: Request) -> bool:
    return (
        request.method == "GET"
        and not request.url.path.startswith("/api/")
        and "text/html" in request.headers.get("accept", "")
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """A known 4xx for a browser as a page, anything else as FastAPI's JSON."""
    assert isinstance(exc, HTTPException)
    if exc.status_code not in _TITLES or not _wants_html(request):
        return await http_exception_handler(request, exc)
    title, default = _TITLES[exc.status_code]
    detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else default
    body = f"<p>{escape(detail)}</p><p><a href='/'>← Back to the chat</a></p>"
    return page(title, body, status_code=exc.status_code)
