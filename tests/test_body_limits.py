"""Request bodies are bounded before anything reads them: 413 with a JSON body.

Over real sockets: a declared Content-Length past the limit is refused before a byte of the
body is sent, and a chunked body is refused as soon as it passes the limit, while it is
still being sent. A longest question, in its worst JSON encoding, still gets through.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from app.localmodel.runner import BackgroundServer
from tests.conftest import sign_in
from tests.sse import chat

API_LIMIT = 64 * 1024  # documented in docs/deploy.md; grows with MAX_MESSAGE_CHARS
OTHER_LIMIT = 16 * 1024


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length; a server still waiting for the body
    would leave this to time out."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(status_line.split()[1]), headers, body


def _request_head(base_url: str, path: str, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {urlsplit(base_url).netloc}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _assert_too_large(status: int, headers: dict[str, str], body: bytes, limit: int) -> None:
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "detail": f"Request body too large: at most {limit} bytes here.",
        "max_bytes": limit,
    }
    assert headers["x-content-type-options"] == "nosniff"  # the 413 is a response like any


def test_a_declared_100_mb_body_is_refused_before_it_is_sent(app_server: BackgroundServer) -> None:
    with _connect(app_server.url) as sock:
        sock.sendall(
            _request_head(
                app_server.url,
                "/api/chat",
                Content_Type="application/json",
                Content_Length=str(100 * 1024 * 1024),
            )
        )
        _assert_too_large(*_read_response(sock), API_LIMIT)


def test_a_chunked_body_is_refused_once_it_passes_the_limit(app_server: BackgroundServer) -> None:
    with _connect(app_server.url) as sock:
        sock.sendall(
            _request_head(
                app_server.url,
                "/api/chat",
                Content_Type="application/json",
                Transfer_Encoding="chunked",
            )
        )
        chunk = b"x" * 1024
        for _ in range(API_LIMIT // len(chunk) + 1):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        # No final chunk: the body never ends, so only the cut-off can answer.
        _assert_too_large(*_read_response(sock), API_LIMIT)


def test_a_streaming_client_gets_the_413(anonymous: httpx.Client) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 16 * 1024  # 1 MiB in all, sent chunked (no Content-Length)

    response = anonymous.post(
        "/api/chat", content=body(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["max_bytes"] == API_LIMIT


@pytest.mark.parametrize(
    ("path", "limit"),
    [("/api/chat", API_LIMIT), ("/api/admin/invites", API_LIMIT), ("/auth/dev-login", OTHER_LIMIT)],
)
def test_each_route_class_has_its_limit(anonymous: httpx.Client, path: str, limit: int) -> None:
    at_limit = anonymous.post(path, content=b"x" * limit)
    assert at_limit.status_code != 413
    over = anonymous.post(path, content=b"x" * (limit + 1))
    assert over.status_code == 413
    assert over.json()["max_bytes"] == limit


def _longest_question(chars: int) -> bytes:
    """The worst JSON encoding: every character astral, escaped as two \\uXXXX (12 bytes)."""
    return json.dumps({"message": "\U0001f600" * chars}).encode()


@pytest.mark.parametrize("max_message_chars", [4000, 10_000])
def test_a_longest_question_in_its_worst_encoding_reaches_the_cap_chain(
    start_app: Callable[..., BackgroundServer], max_message_chars: int
) -> None:
    """One character too many gets the cap chain's friendly 413, not the body limit's."""
    server = start_app(max_message_chars=max_message_chars)
    body = _longest_question(max_message_chars + 1)
    assert len(body) > 12 * max_message_chars
    with sign_in(server.url, "long@example.com") as client:
        response = client.post(
            "/api/chat", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["detail"].startswith("Your message is too long")


def test_a_normal_chat_still_works(client: httpx.Client) -> None:
    events = chat(client, "How do I ingest PDF files?")
    assert events[-1][0] == "done"
