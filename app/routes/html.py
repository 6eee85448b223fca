"""Tiny server-rendered pages (sign-in, errors, status). Every dynamic value is HTML-escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from fastapi.responses import HTMLResponse

PRODUCT = "ragship"


def page(
    title: str, body: str, *, status_code: int = 200, body_class: str = "page"
) -> HTMLResponse:
    """`body` is trusted markup built by the caller with `escape()` around every value."""
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta name='color-scheme' content='light dark'>"
        f"<title>{escape(title)} · {PRODUCT}</title>"
        "<link rel='icon' href='/static/favicon.svg' type='image/svg+xml'>"
        "<link rel='stylesheet' href='/static/style.css'></head>"
        f"<body class='{body_class}'><header class='site'><a class='brand' href='/'>{PRODUCT}</a>"
        "<nav aria-label='Site'><a href='/'>Chat</a> <a href='/status'>Status</a> "
        "<a href='/about'>About</a></nav></header>"
        f"<main><h1>{escape(title)}</h1>{body}</main>"
        "<footer class='muted'><a href='/about'>About, privacy and contact</a></footer>"
        "</body></html>",
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def message_page(title: str, message: str, *, status_code: int) -> HTMLResponse:
    return page(
        title,
        f"<p>{escape(message)}</p><p><a href='/auth/login'>Back to sign-in</a></p>",
        status_code=status_code,
    )


def human_time(iso: str) -> str:
    """An ISO 8601 timestamp as people read it: "30 Nov 2026, 13:40 UTC" (no microseconds).
    A value that is not ISO 8601 is returned unchanged."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:  # naive timestamps are UTC throughout ragship
        moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"
