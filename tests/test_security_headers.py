"""Every response carries the security headers: every route, signed in or not, static files,
404s and the chat stream. No page runs inline script or loads anything from another host.

Routes are enumerated from the app, so a new route is checked without being listed here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from app.http.security_headers import CONTENT_SECURITY_POLICY
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from tests.conftest import make_settings, scalar, sign_in
from tests.sse import read_events

STATIC = Path(__file__).resolve().parent.parent / "static"
ADMIN = "root@example.com"
DUMMY = {
    "conversation_id": "00000000-0000-0000-0000-000000000000",
    "user_id": "00000000-0000-0000-0000-000000000000",
}
# Loading something from another host (CDN scripts, styles, fonts, frames, images).
_EXTERNAL = re.compile(
    r"<(?:script|link|img|iframe|source|embed|object)\b[^>]*\b(?:src|href|data)\s*=\s*"
    r"[\"']?(?:https?:)?//",
    re.IGNORECASE,
)
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.IGNORECASE)
_HANDLER = re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE)
_INLINE_STYLE = re.compile(r"<style\b|<[^>]+\sstyle\s*=", re.IGNORECASE)
# An XML namespace (inline SVG icons) names a URL but loads nothing.
_JS_PROBLEMS = re.compile(
    r"[\"'`](?:https?:)?//(?!www\.w3\.org/)[\w.-]+|\bimport\s*\(\s*[\"'`]https?:"
    r"|\bimport\b[^;]*\bfrom\s*[\"'`](?:https?:)?//|eval\("
)


def _problems(html: str, *, inline_styles: bool = False) -> list[str]:
    """What a strict CSP would block or what would reach another host."""
    found = [f"external load: {m.group(0)}" for m in _EXTERNAL.finditer(html)]
    found += [f"inline script: {m.group(0)}" for m in _INLINE_SCRIPT.finditer(html)]
    found += [f"inline handler: {m.group(0)}" for m in _HANDLER.finditer(html)]
    found += ["javascript: URL"] if re.search(r"javascript:", html, re.IGNORECASE) else []
    if not inline_styles:
        found += [f"inline style: {m.group(0)}" for m in _INLINE_STYLE.finditer(html)]
    return found


def _flatten(routes: list[Any]) -> list[Any]:
    flat = []
    for route in routes:
        included = getattr(route, "original_router", None)
        flat += _flatten(included.routes) if included is not None else [route]
    return flat


def _routes(**settings: Any) -> list[tuple[str, str]]:
    app = create_app(make_settings(**settings))
    return sorted(
        (method, re.sub(r"\{(\w+)\}", lambda m: DUMMY.get(m.group(1), "1"), route.path))
        for route in _flatten(app.routes)
        for method in (getattr(route, "methods", None) or set()) - {"HEAD"}
    )


def assert_secure(response: httpx.Response, *, prod: bool = False) -> None:
    path = response.request.url.path
    where = f"{response.request.method} {path} ({response.status_code})"
    headers = response.headers
    assert headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, where
    assert "frame-ancestors 'none'" in headers["content-security-policy"], where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("referrer-policy") == "same-origin", where
    assert ("strict-transport-security" in headers) == prod, where
    if prod:
        assert headers["strict-transport-security"].startswith("max-age=31536000"), where
    cache = headers.get("cache-control", "")
    if path.startswith("/static/"):
        assert "no-store" not in cache, where
    else:
        assert "no-store" in cache, where


@pytest.fixture
def admin_app(
    start_app: Callable[..., BackgroundServer], new_database: Callable[[], str]
) -> BackgroundServer:
    """Its own database: the sweep below creates an invite and signs out."""
    return start_app(database_url=new_database(), admin_emails=ADMIN)


@pytest.fixture
def admin(admin_app: BackgroundServer) -> Iterator[httpx.Client]:
    with sign_in(admin_app.url, ADMIN) as client:
        yield client


def test_every_route_sends_the_headers_anonymous_and_signed_in(
    admin_app: BackgroundServer, admin: httpx.Client
) -> None:
    routes = _routes(admin_emails=ADMIN)
    assert ("POST", "/api/chat") in routes and ("GET", "/admin") in routes
    pages: dict[str, str] = {}
    with httpx.Client(base_url=admin_app.url, timeout=30) as anonymous:
        for client in (anonymous, admin):
            for method, path in routes:
                if (method, path) == ("POST", "/auth/logout"):
                    continue  # last: it ends the session the rest of the sweep uses
                response = client.request(method, path, json={}, headers={"Origin": admin_app.url})
                assert_secure(response)
                if response.headers.get("content-type", "").startswith("text/html"):
                    pages[f"{method} {path} ({response.status_code})"] = response.text
    assert_secure(admin.post("/auth/logout"))
    assert any(page.startswith("GET /admin (200)") for page in pages)
    assert any(page.startswith("GET /status (200)") for page in pages)
    for where, html in pages.items():
        assert _problems(html) == [], where


def test_static_files_404s_and_405s_send_the_headers(anonymous: httpx.Client) -> None:
    for path in ("/static/chat.js", "/static/style.css", "/static/index.html"):
        response = anonymous.get(path)
        assert response.status_code == 200
        assert_secure(response)
    for response in (
        anonymous.get("/static/missing.js"),
        anonymous.get("/no/such/page"),
        anonymous.get("/api/no-such-route"),
        anonymous.put("/healthz"),
    ):
        assert response.status_code in (404, 405)
        assert_secure(response)


def test_the_chat_stream_keeps_its_no_transform_and_still_streams(client: httpx.Client) -> None:
    with client.stream("POST", "/api/chat", json={"message": "How do I ingest PDF files?"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert_secure(r)
        directives = {d.strip() for d in r.headers["cache-control"].split(",")}
        assert {"no-store", "no-cache", "no-transform"} <= directives
        events = read_events(r)
    assert [name for name, _ in events][:2] == ["meta", "sources"]
    assert events[-1][0] == "done"


def test_source_pages_have_no_inline_script_or_external_loads(
    client: httpx.Client, db_engine: Engine
) -> None:
    document_id = scalar(db_engine, "SELECT min(id) FROM documents")
    response = client.get(f"/sources/{document_id}")
    assert response.status_code == 200
    assert_secure(response)
    assert _problems(response.text) == []


def test_prod_sends_hsts_and_serves_no_api_schema(prod_app: BackgroundServer) -> None:
    with httpx.Client(base_url=prod_app.url, timeout=30) as anonymous:
        for path in ("/about", "/auth/login", "/api/me", "/static/chat.js", "/api/openapi.json"):
            assert_secure(anonymous.get(path), prod=True)
        assert anonymous.get("/api/openapi.json").status_code == 404
        assert anonymous.get("/api/docs").status_code == 404


def test_dev_serves_the_schema_but_no_swagger_or_redoc(anonymous: httpx.Client) -> None:
    assert anonymous.get("/api/openapi.json").status_code == 200
    for path in ("/api/docs", "/api/redoc", "/docs", "/redoc", "/docs/oauth2-redirect"):
        response = anonymous.get(path)
        assert response.status_code == 404, path
        assert "cdn" not in response.text.lower()


def test_static_files_have_no_inline_script_or_external_loads() -> None:
    for page in sorted(STATIC.glob("*.html")):
        assert _problems(page.read_text()) == [], page.name
    ours = [p for p in STATIC.rglob("*.js") if "vendor" not in p.relative_to(STATIC).parts]
    assert len(ours) > 5  # the entry modules and static/js/
    for script in sorted(ours):
        assert _JS_PROBLEMS.findall(script.read_text()) == [], script.name
    assert not re.search(
        r"url\(\s*[\"']?(?:https?:)?//|@import", (STATIC / "style.css").read_text()
    )


def test_the_page_scanner_finds_what_a_strict_policy_blocks() -> None:
    assert _problems('<script src="https://cdn.example/x.js"></script>')
    assert _problems("<link rel=stylesheet href=//fonts.example/css>")
    assert _problems("<script>alert(1)</script>")
    assert _problems("<button onclick='go()'>")
    assert _problems("<a href='javascript:go()'>")
    assert _problems("<p style='color:red'>") and _problems("<style>p{}</style>")
    assert not _problems("<p style='color:red'>", inline_styles=True)
    assert not _problems(
        '<script src="/static/chat.js" defer></script><a href="https://x.example">'
    )
    assert _JS_PROBLEMS.findall('fetch("https://api.example/x")')
    assert _JS_PROBLEMS.findall('import { marked } from "https://cdn.example/marked.js";')
    assert not _JS_PROBLEMS.findall('createElementNS("http://www.w3.org/2000/svg", "svg")')
    assert not _JS_PROBLEMS.findall('url.startsWith("//")')
