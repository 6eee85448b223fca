"""Every route is behind sign-in unless it is on a short, reviewed public list.

A new route that can reach the LLM or spend money fails this test until it requires a
session: the test enumerates the app's routes rather than listing the protected ones.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi.routing import APIRoute

from app.main import create_app
from tests.conftest import make_settings

# Reviewed: none of these can reach the LLM, spend money or show private data.
PUBLIC = {
    ("GET", "/about"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/status"),
    ("GET", "/api/status"),
    # One minimal upstream call per LLM_HEALTH_CACHE_S at most, however often it is polled.
    ("GET", "/health/llm"),
    ("GET", "/auth/login"),
    ("GET", "/auth/start"),
    ("GET", "/auth/callback"),
    ("POST", "/auth/dev-login"),
    ("GET", "/invite/{code}"),
    ("GET", "/api/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/api/openapi.json"),
}
DUMMY = {
    "conversation_id": "00000000-0000-0000-0000-000000000000",
    "user_id": "00000000-0000-0000-0000-000000000000",
}


def _flatten(routes: list[Any]) -> list[Any]:
    """FastAPI keeps included routers as nodes; walk into them for the real routes."""
    flat = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat += _flatten(included.routes) if included is not None else [route]
    return flat


def _routes() -> list[tuple[str, str]]:
    app = create_app(make_settings())
    return [
        (method, route.path)
        for route in _flatten(app.routes)
        for method in (getattr(route, "methods", None) or set()) - {"HEAD"}
    ]


def _fill(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: DUMMY.get(m.group(1), "1"), path)


def test_every_non_public_route_refuses_anonymous_callers(anonymous: httpx.Client) -> None:
    checked = 0
    for method, path in _routes():
        if (method, path) in PUBLIC:
            continue
        response = anonymous.request(
            method, _fill(path), json={}, headers={"Origin": str(anonymous.base_url)}
        )
        if path.startswith("/api/"):
            assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
            assert response.json() == {"detail": "Sign in first."}
        else:
            assert response.status_code == 303, f"{method} {path} answered {response.status_code}"
            assert response.headers["location"].startswith("/auth/login?next=")
        checked += 1
    assert checked >= 10


def test_the_chat_route_is_among_the_protected_ones() -> None:
    routes = set(_routes())
    assert ("POST", "/api/chat") in routes and ("POST", "/api/chat") not in PUBLIC


def test_public_list_has_no_stale_entries() -> None:
    assert PUBLIC <= set(_routes())


def test_routes_are_found_through_included_routers() -> None:
    flat = _flatten(create_app(make_settings()).routes)
    assert sum(isinstance(r, APIRoute) for r in flat) >= 15
