"""Real reverse proxies for the tests: Caddy and nginx run from the configs ragship ships.

Only what a test machine needs differs from production, and it is passed in, never edited
into the shipped files: Caddy gets SITE_ADDRESS/UPSTREAM/CADDY_ADMIN through the environment
its Caddyfile reads; nginx's shipped `location` snippet is included as is, inside a minimal
main config that listens on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT, eventually

INFRA = ROOT / "infra"
CADDYFILE = INFRA / "vps" / "Caddyfile"
NGINX_SITE = INFRA / "nginx" / "ragship.conf"
NGINX_SNIPPET = INFRA / "nginx" / "ragship-proxy.conf"


def tool(name: str) -> str:
    """A Debian tool `make infra-tools` installs (nginx lives in /usr/sbin)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    assert found, f"{name} is missing: run `make infra-tools`"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepting(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def caddy_env(tmp: Path, **values: str) -> dict[str, str]:
    """Caddy's environment: its state under tmp, the admin API off, the given variables."""
    return {
        **os.environ,
        "HOME": str(tmp),
        "XDG_DATA_HOME": str(tmp / "data"),
        "XDG_CONFIG_HOME": str(tmp / "config"),
        "CADDY_ADMIN": "off",
        **values,
    }


@contextmanager
def _serving(
    command: list[str], port: int, *, env: dict[str, str] | None, log: Path
) -> Iterator[str]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        eventually(
            lambda: process.poll() is not None or _accepting(port), what=f"{command[0]} to listen"
        )
        assert process.poll() is None, f"{command[0]} exited:\n{log.read_text()}"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def caddy(
    tmp: Path, upstream: str, *, caddyfile: Path = CADDYFILE, site_port: int | None = None
) -> Iterator[str]:
    """Caddy running `caddyfile` (the shipped one by default) in front of `upstream`."""
    port = site_port or free_port()
    env = caddy_env(tmp, SITE_ADDRESS=f"http://127.0.0.1:{port}", UPSTREAM=upstream)
    command = [tool("caddy"), "run", "--config", str(caddyfile), "--adapter", "caddyfile"]
    with _serving(command, port, env=env, log=tmp / "caddy.log") as url:
        yield url


def nginx_main_conf(tmp: Path, *, port: int, upstream: str, snippet: Path) -> Path:
    """A minimal nginx.conf around the shipped `location` snippet."""
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    upstream ragship {{ server {upstream}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{port};
        include {snippet};
    }}
}}
"""
    )
    return conf


@contextmanager
def nginx(tmp: Path, upstream: str, *, snippet: Path = NGINX_SNIPPET) -> Iterator[str]:
    """nginx proxying with `snippet` (the shipped one by default) to `upstream`."""
    port = free_port()
    conf = nginx_main_conf(tmp, port=port, upstream=upstream, snippet=snippet)
    command = [tool("nginx"), "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
    command += ["-g", "daemon off;"]
    with _serving(command, port, env=None, log=tmp / "nginx.log") as url:
        yield url
