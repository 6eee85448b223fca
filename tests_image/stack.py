"""Bring up the shipped compose stack's `app` and `caddy` services with docker-compose on podman.

Workarounds for the test machine, all here, none in the shipped files:
- docker-compose (Debian's 1.29) talks to `podman system service`'s Docker API socket, run
  on the image test's private store (`serving`), configured by a containers.conf of its own
  (CONTAINERS_CONF): the runc runtime and explicit ulimits (as harness.RUNC and LIMITS),
  network definitions in the test's folder (not /etc/containers), and tini-static (Debian's
  `tini`, which podman recommends) as the init for the app's `init: true`: catatonit,
  podman's default init, is not installed.
- No registry: `caddy:2` is built here from the harness's Debian base with this machine's
  Caddy binary, with the official image's command and state folders (`caddy_image`).
- The shipped compose.yaml and Caddyfile are copied unchanged into a folder of their own
  (`copy_shipped`), so that the `.env.prod` the compose file reads (`../../.env.prod`) is the
  test's, never a developer's real one.
- An override file (`override`) points the app and the `migrate` job at the test PostgreSQL
  and Redis on the host (host network, their unix sockets mounted), and Caddy at the app on
  the host network, with plain HTTP on a free port (automatic HTTPS needs a real domain) and
  its admin API on a free port. The app's health check asks the app's free port instead of
  8000, written without whitespace inside an argument: podman 4.3's Docker API splits
  every argument of a health check at whitespace (podman issue 26519, fixed upstream in
  December 2025), and the shipped check, which Docker runs as written, would never pass here.
- Podman runs health checks from systemd timers, and this machine has no systemd: the test runs
  the app's health check itself (`podman healthcheck run`) where the timer would, and starts
  the services with `--no-deps` (`db` and `redis` need registry images). Caddy starts with
  `docker-compose run`, which leaves out the published ports 80 and 443: a container on the
  host network cannot publish ports, and a shared test machine must not take them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.conftest import ROOT, eventually
from tests_image import harness

SHIPPED = ROOT / "infra" / "vps"
CADDY_IMAGE = "docker.io/library/caddy:2"
# Tags the compose file's `image:` names resolve to; podman's Docker API looks them up as is.
APP_TAGS = ("localhost/ragship:latest",)
INIT = Path("/usr/bin/tini-static")


def containers_conf(root: Path) -> Path:
    """The podman service's containers.conf: runc, ulimits, networks under root, tini."""
    assert INIT.exists(), f"{INIT} is missing: install Debian's 'tini' package"
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "containers.conf"
    conf.write_text(
        "[containers]\n"
        f'init_path = "{INIT}"\n'
        'default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        f'init_path = "{INIT}"\n'  # podman 4.3's Docker API reads it here, its CLI above
        "[network]\n"
        f'network_config_dir = "{root / "networks"}"\n'
    )
    (root / "networks").mkdir(exist_ok=True)
    return conf


def caddy_image(work: Path) -> str:
    """`caddy:2` from the harness's Debian base and this machine's Caddy (2.6)."""
    context = work / "caddy"
    context.mkdir(parents=True)
    caddy = shutil.which("caddy")
    assert caddy, "caddy is missing: run `make infra-tools`"
    shutil.copy(caddy, context / "caddy")
    (context / "Containerfile").write_text(
        f"FROM {harness.DEBIAN}\n"
        "COPY caddy /usr/bin/caddy\n"
        "ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data\n"
        "WORKDIR /srv\n"
        'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]\n'
    )
    harness.sh(*harness.PODMAN, "build", *harness.LIMITS, "-t", CADDY_IMAGE, context)
    return CADDY_IMAGE


def _pinging(socket: Path) -> bool:
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket)), timeout=2) as client:
            return client.get("http://podman/_ping").status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def serving(root: Path) -> Iterator[dict[str, str]]:
    """`podman system service` on the current store; yields docker-compose's environment."""
    socket = root / "podman.sock"
    env = {**os.environ, "CONTAINERS_CONF": str(containers_conf(root))}
    log = (root / "service.log").open("wb")
    service = subprocess.Popen(
        [*harness.PODMAN, "system", "service", "--time", "0", f"unix://{socket}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        eventually(
            lambda: service.poll() is not None or _pinging(socket), what="podman's API socket"
        )
        assert service.poll() is None, (root / "service.log").read_text()
        yield {**env, "DOCKER_HOST": f"unix://{socket}", "COMPOSE_HTTP_TIMEOUT": "300"}
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        log.close()


def copy_shipped(folder: Path, env_prod: dict[str, str]) -> Path:
    """The shipped compose.yaml and Caddyfile, unchanged, under folder/infra/vps, and the
    given `.env.prod` at folder/.env.prod where the compose file reads it; returns folder."""
    (folder / "infra" / "vps").mkdir(parents=True)
    for name in ("compose.yaml", "Caddyfile"):
        shutil.copy(SHIPPED / name, folder / "infra" / "vps" / name)
    (folder / ".env.prod").write_text("".join(f"{k}={v}\n" for k, v in env_prod.items()))
    return folder


def override(
    folder: Path, *, app_env: dict[str, str], mounts: list[Path], port: int, caddy: dict[str, str]
) -> Path:
    """The harness's compose override: host network, the test's URLs, mounts and ports."""
    # The shipped check with the app's port, and without whitespace inside an argument:
    # podman 4.3's Docker API splits every argument at whitespace (podman issue 26519).
    health = (
        f"__import__('urllib.request').request.urlopen('http://127.0.0.1:{port}/readyz',timeout=2)"
    )
    ragship = {
        "network_mode": "host",
        "environment": app_env,
        "volumes": [f"{m}:{m}" for m in mounts],
    }
    services: dict[str, Any] = {
        "migrate": ragship,
        "app": {**ragship, "healthcheck": {"test": ["CMD", "python", "-c", health]}},
        "caddy": {"network_mode": "host", "environment": caddy},
    }
    path = folder / "test.override.yaml"
    path.write_text(yaml.safe_dump({"services": services}))
    return path


def compose(
    folder: Path, env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """docker-compose on the copied shipped file plus the override, as the deploy runs it."""
    command = [
        "docker-compose", "--env-file", str(folder / ".env.prod"), "--project-name", "ragship",
        "-f", str(folder / "infra" / "vps" / "compose.yaml"),
        "-f", str(folder / "test.override.yaml"), *args,
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
    )
