"""Cross-site request protection for state-changing requests.

Two checks, both required: the request's Origin (or, failing that, Referer) is our own
site, and the X-CSRF-Token header equals the session's CSRF token. A cross-site form or
fetch that carries a valid session cookie fails the first; a same-site attacker without
the token fails the second.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from app.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"


def same_origin(request: Request, settings: Settings) -> bool:
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        return False
    try:
        parts = urlsplit(claimed)
    except ValueError:  # e.g. "http://[": not a URL, so not ours
        return False
    if settings.public_url:
        ours = urlsplit(settings.public_url)
        return (parts.scheme, parts.netloc) == (ours.scheme, ours.netloc)
    return parts.netloc == request.headers.get("host")


def require_same_origin(request: Request, settings: Settings) -> None:
    if not same_origin(request, settings):
        raise HTTPException(403, "Cross-site request refused.")


def require_csrf(request: Request, settings: Settings, expected_token: str) -> None:
    require_same_origin(request, settings)
    supplied = request.headers.get(CSRF_HEADER, "")
    if not secrets.compare_digest(supplied.encode(), expected_token.encode()):
        raise HTTPException(403, "Missing or wrong CSRF token: reload the page and try again.")
