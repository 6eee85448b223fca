"""Text or numbers that PostgreSQL or JSON cannot carry never give a 5xx.

Every route of the app is enumerated (a new route is covered without being listed) and
sent, as a signed-in admin with a valid CSRF token, hostile values in each path parameter,
each query parameter, each body field and the headers ragship reads: NUL and other control
characters, lone surrogates, invalid UTF-8, huge integers and non-finite numbers. Each
answer must be below 500, and a JSON answer must be valid JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import Engine

from app.http.errors import NOT_JSON
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from tests.conftest import make_settings, scalar, sign_in
from tests.sse import read_events
from tests.test_auth_routes import _flatten

ADMIN = "hostile-admin@example.com"
# Path and query values, percent-encoded as they travel.
PATH_VALUES = ["%00", "a%00b", "%01", "%ED%B2%80", "%FF", "9" * 30, "1e309", "NaN", "-1", "0"]
# JSON values, as raw JSON text (so lone surrogates and non-finite numbers survive).
JSON_VALUES = [
    '"\\u0000"',
    '"a\\u0000b"',
    '"\\u001b[31m"',
    '"\\udc00 ingest"',
    '"\\ud800"',
    "1" + "0" * 30,
    "-" + "9" * 30,
    "1e999",
    "NaN",
    "-Infinity",
    "[]",
    "{}",
    "null",
]
BAD_HEADERS: list[dict[str, Any]] = [
    {"Origin": "http://["},
    {"Referer": "http://[::1"},
    {"X-CSRF-Token": "t\xe9\xff".encode("latin-1")},
    {"Cookie": 'ragship_session="\\000abc"'},
    {"Cookie": 'ragship_session="\\355\\262\\200"'},
    {"Authorization": b"Bearer \xff\xfe"},
]


@pytest.fixture(scope="module")
def routes() -> list[tuple[str, APIRoute]]:
    app = create_app(make_settings())
    found = [
        (method, route)
        for route in _flatten(app.routes)
        if isinstance(route, APIRoute)
        for method in sorted(route.methods - {"HEAD"})
    ]
    # Sign-out last: it ends the session the other requests use.
    return sorted(found, key=lambda mr: mr[1].path == "/auth/logout")


@pytest.fixture
def admin_app(start_app) -> BackgroundServer:  # type: ignore[no-untyped-def]
    server: BackgroundServer = start_app(admin_emails=ADMIN, rate_limit_requests=100_000)
    return server


@pytest.fixture
def admin(admin_app: BackgroundServer) -> Iterator[httpx.Client]:
    with sign_in(admin_app.url, ADMIN) as client:
        yield client


def _check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what} answered {response.status_code}: {response.text}"
    if response.headers.get("content-type", "").startswith("application/json"):
        json.loads(response.content)  # raises on invalid JSON
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        read_events(response)


def _send(client: httpx.Client, method: str, url: str, what: str, **kwargs: Any) -> None:
    with client.stream(method, url, **kwargs) as response:
        response.read()
        _check(response, what)


def _fill(path: str, value: str = "1") -> str:
    return re.sub(r"\{(\w+)\}", value, path)


def _takes_form(route: APIRoute) -> bool:
    return route.body_field is not None and any(
        type(p.field_info).__name__ == "Form" for p in route.dependant.body_params
    )


def _body_fields(route: APIRoute) -> list[str]:
    body = route.body_field
    if body is None:
        return []
    annotation = body.field_info.annotation
    fields = getattr(annotation, "model_fields", None)
    return list(fields) if fields else [body.name]


def test_every_route_survives_hostile_values(
    admin: httpx.Client, routes: list[tuple[str, APIRoute]]
) -> None:
    sent = 0
    for method, route in routes:
        params = re.findall(r"\{(\w+)\}", route.path)
        for name in params:
            for value in PATH_VALUES:
                path = re.sub(r"\{" + name + r"\}", value, route.path)
                _send(admin, method, _fill(path), f"{method} {route.path} {name}={value}")
                sent += 1
        queries = [q.alias for q in route.dependant.query_params] + ["unknown"]
        for name in queries:
            for value in PATH_VALUES:
                url = f"{_fill(route.path)}?{name}={value}"
                _send(admin, method, url, f"{method} {route.path} ?{name}={value}")
                sent += 1
        form = _takes_form(route)
        for name in _body_fields(route):
            for value in JSON_VALUES:
                what = f"{method} {route.path} {name}={value}"
                if form:
                    raw = value.strip('"').replace("\\u0000", "%00").replace("\\udc00", "%ED%B0%80")
                    _send(
                        admin,
                        method,
                        _fill(route.path),
                        what,
                        content=f"{name}={raw}&email=x%40example.com".encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                else:
                    _send(
                        admin,
                        method,
                        _fill(route.path),
                        what,
                        content=f'{{"{name}": {value}}}'.encode(),
                        headers={"Content-Type": "application/json"},
                    )
                sent += 1
        for headers in BAD_HEADERS:
            _send(
                admin,
                method,
                _fill(route.path),
                f"{method} {route.path} {headers}",
                headers=headers,
            )
            sent += 1
    assert sent > 500


def test_a_nul_question_is_refused_before_the_rate_limit_and_the_connection_lives_on(
    admin_app: BackgroundServer, db_engine: Engine
) -> None:
    with sign_in(admin_app.url, "nul@example.com") as client:
        refused = client.post("/api/chat", json={"message": "\u0000"})
        assert refused.status_code == 422 and refused.json()["detail"]
        # The same keep-alive connection still answers.
        me = client.get("/api/me")
        assert me.status_code == 200
    # No upstream call and no rate-limit hit for a refused body: nothing in the ledger.
    calls = scalar(
        db_engine,
        "SELECT count(*) FROM llm_calls c JOIN users u ON u.id = c.user_id "
        "WHERE u.email = 'nul@example.com'",
    )
    assert calls == 0


def test_a_lone_surrogate_is_replaced_and_the_question_answered(
    admin_app: BackgroundServer,
) -> None:
    with sign_in(admin_app.url, "surrogate@example.com") as client:
        with client.stream(
            "POST",
            "/api/chat",
            content=b'{"message": "\\udc00 ingest"}',
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status_code == 200
            events = read_events(response)
        assert events[-1][0] in ("done", "error")
        conversation = events[0][1]["conversation_id"]
        stored = client.get(f"/api/conversations/{conversation}").json()["messages"][0]
        assert stored["content"] == "\ufffd ingest"


def test_a_nul_inside_a_question_is_dropped(admin_app: BackgroundServer) -> None:
    with sign_in(admin_app.url, "nul-inside@example.com") as client:
        with client.stream(
            "POST", "/api/chat", json={"message": "How do I \u0000ingest PDF files?"}
        ) as response:
            assert response.status_code == 200
            events = read_events(response)
        conversation = events[0][1]["conversation_id"]
        stored = client.get(f"/api/conversations/{conversation}").json()["messages"][0]
        assert stored["content"] == "How do I ingest PDF files?"


def test_the_validation_error_for_a_surrogate_is_valid_json(admin: httpx.Client) -> None:
    response = admin.post(
        "/api/messages/1/feedback",
        content=b'{"rating": "\\udc00"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    body = json.loads(response.content)
    assert body["detail"][0]["input"] == "\ufffd"


def test_hostile_path_and_query_get_a_json_400(admin: httpx.Client) -> None:
    for url in ("/api/conversations/%00", "/invite/a%00b", "/auth/login?next=/%00", "/x%FF"):
        response = admin.get(url)
        assert response.status_code == 400, url
        assert "not allowed" in response.json()["detail"]


def test_huge_ids_are_a_422_not_a_database_error(admin: httpx.Client) -> None:
    response = admin.post(f"/api/messages/{'9' * 30}/feedback", json={"rating": "up"})
    assert response.status_code == 422
    response = admin.get(f"/api/admin/dashboard/calls/{2**63}")
    assert response.status_code == 422


def test_settings_reject_non_finite_numbers() -> None:
    for value in ("nan", "inf", "-inf"):
        with pytest.raises(ValueError):
            make_settings(llm_temperature=value)


def test_a_json_route_sent_another_type_says_to_send_json(
    admin: httpx.Client, routes: list[tuple[str, APIRoute]]
) -> None:
    """curl's `-d` alone sends a form: every route that takes a JSON object answers 415 with
    what to send, where FastAPI said only "Input should be a valid dictionary or object"."""
    others = ["application/x-www-form-urlencoded", "text/plain; charset=utf-8", None]
    checked = []
    for method, route in routes:
        body = route.body_field
        takes_object = body is not None and hasattr(body.field_info.annotation, "model_fields")
        if not takes_object or _takes_form(route):
            continue
        url = _fill(route.path)
        for kind in others:  # None: no Content-Type at all, as requests.post(data=...) sends
            headers = {"Content-Type": kind} if kind else {}
            answer = admin.request(method, url, content=b'{"name": "x"}', headers=headers)
            assert answer.status_code == 415, (route.path, kind, answer.status_code, answer.text)
            assert answer.json() == {"detail": NOT_JSON}
        # JSON that is not an object, in any JSON type, is still the 422 that names the field
        for kind in (
            "application/json",
            "application/json; charset=utf-8",
            "application/problem+json",
        ):
            answer = admin.request(method, url, content=b'["x"]', headers={"Content-Type": kind})
            assert answer.status_code == 422, (route.path, kind, answer.status_code)
        checked.append(route.path)
    assert {"/api/chat", "/api/tokens"} <= set(checked)
