"""Tiny server-rendered pages (sign-in, errors). Every dynamic value is HTML-escaped."""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse


def page(title: str, body: str, *, status_code: int = 200) -> HTMLResponse:
    """`body` is trusted markup built by the caller with `escape()` around every value."""
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)} · ragship</title>"
        "<link rel='stylesheet' href='/static/style.css'></head>"
        f"<body class='source'><h1>{escape(title)}</h1>{body}"
        "<p class='muted'><a href='/about'>About, privacy and contact</a></p></body></html>",
        status_code=status_code,
        headers={"Cache-Control": "no-store"},
    )


def message_page(title: str, message: str, *, status_code: int) -> HTMLResponse:
    return page(
        title,
        f"<p>{escape(message)}</p><p><a href='/auth/login'>Back to sign-in</a></p>",
        status_code=status_code,
    )
