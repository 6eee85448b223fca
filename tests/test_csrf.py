"""The CSRF checks on their own, on real Starlette requests: which Origin/Referer counts as
ours (with and without PUBLIC_URL), and the token comparison. The HTTP tests in
test_auth_oidc.py check that the routes apply them."""

from __future__ import annotations

import pytest
from fastapi import HTTPException
from starlette.requests import Request

from app.auth.csrf import require_csrf, require_same_origin, same_origin
from tests.conftest import make_settings

LOCAL = make_settings()
PUBLIC = make_settings(public_url="https://chat.example.com")


def request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": raw})


@pytest.mark.parametrize(
    ("headers", "ours"),
    [
        ({"host": "127.0.0.1:8000", "origin": "http://127.0.0.1:8000"}, True),
        ({"host": "127.0.0.1:8000", "referer": "http://127.0.0.1:8000/chat?x=1"}, True),
        ({"host": "127.0.0.1:8000", "origin": "http://evil.example"}, False),
        # Origin wins over Referer: a cross-site Origin is not rescued by our own Referer.
        (
            {
                "host": "127.0.0.1:8000",
                "origin": "http://evil.example",
                "referer": "http://127.0.0.1:8000/",
            },
            False,
        ),
        ({"host": "127.0.0.1:8000", "origin": "null"}, False),
        # A sandboxed page sends "null": never ours, even beside an empty Host header.
        ({"host": "", "origin": "null"}, False),
        ({"host": "127.0.0.1:8000", "origin": "http://["}, False),
        ({"host": "127.0.0.1:8000"}, False),
    ],
)
def test_without_public_url_the_host_header_is_our_origin(
    headers: dict[str, str], ours: bool
) -> None:
    assert same_origin(request(headers), LOCAL) is ours


@pytest.mark.parametrize(
    ("claimed", "ours"),
    [
        ("https://chat.example.com", True),
        ("https://chat.example.com/some/page", True),
        ("http://chat.example.com", False),  # another scheme is another origin
        ("https://chat.example.com:8443", False),
        ("https://evil.example", False),
    ],
)
def test_with_public_url_only_its_scheme_and_host_are_ours(claimed: str, ours: bool) -> None:
    # The Host header agrees with the claim, as a request through a proxy may: PUBLIC_URL decides.
    host = claimed.split("://", 1)[1].split("/", 1)[0]
    assert same_origin(request({"host": host, "origin": claimed}), PUBLIC) is ours


def test_a_cross_site_request_is_refused_before_the_token_is_looked_at() -> None:
    cross = request({"host": "a.test", "origin": "http://evil.example", "x-csrf-token": "t0k"})
    with pytest.raises(HTTPException) as refused:
        require_same_origin(cross, LOCAL)
    assert (refused.value.status_code, refused.value.detail) == (
        403,
        "Cross-site request refused.",
    )
    with pytest.raises(HTTPException) as refused:
        require_csrf(cross, LOCAL, "t0k")
    assert refused.value.detail == "Cross-site request refused."


@pytest.mark.parametrize("supplied", [None, "", "t0", "t0kk", "T0K"])
def test_a_missing_or_wrong_token_is_refused(supplied: str | None) -> None:
    headers = {"host": "a.test", "origin": "http://a.test"}
    if supplied is not None:
        headers["x-csrf-token"] = supplied
    with pytest.raises(HTTPException) as refused:
        require_csrf(request(headers), LOCAL, "t0k")
    assert (refused.value.status_code, refused.value.detail) == (
        403,
        "Missing or wrong CSRF token: reload the page and try again.",
    )


def test_the_right_token_from_our_own_origin_passes() -> None:
    ok = request({"host": "a.test", "origin": "http://a.test", "x-csrf-token": "t0k"})
    require_same_origin(ok, LOCAL)
    require_csrf(ok, LOCAL, "t0k")
