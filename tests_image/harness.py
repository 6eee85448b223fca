"""Build and run ragship's image on this machine, with podman, without a registry.

Everything here is a workaround for the test machine, kept out of the shipped files:
rootful podman needs `--runtime runc` and explicit ulimits; no registry is reachable, so
the base image (the Dockerfile's PYTHON_IMAGE) is made from the Debian mirror with
mmdebstrap plus this machine's own CPython 3.11 in /usr/local, as in python:3.11-slim
(Debian 12's Python is 3.11.2, too old for some pinned wheels); pip inside the build gets
this machine's CA bundle and wheel folder (the CPU torch wheel) through build arguments.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.conftest import ROOT

PODMAN = ["podman", "--runtime", "runc"]
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]
DEBIAN = "localhost/ragship-base:bookworm"
BASE = "localhost/ragship-base:py311"
IMAGE = "localhost/ragship:image-test"
WHEELS = Path("/opt/wheels")
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def sh(*command: str | Path, timeout: float = 1800) -> str:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def _exists(image: str) -> bool:
    return subprocess.run([*PODMAN, "image", "exists", image]).returncode == 0


def build_base(work: Path) -> None:
    if not _exists(DEBIAN):
        tar = work / "debian.tar"
        packages = "python3,python3-venv,ca-certificates,curl,passwd"
        sh("mmdebstrap", "--quiet", "--variant=minbase", f"--include={packages}", "bookworm", tar)
        path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        sh(*PODMAN, "import", "--change", f"ENV={path}", tar, DEBIAN)
        tar.unlink()
    if not _exists(BASE):
        context = work / "base"
        (context / "py").mkdir(parents=True)
        prefix = Path(sysconfig.get_config_var("prefix"))
        stdlib = "lib/python3.11"
        excluded = [f"--exclude={stdlib}/{d}" for d in ("site-packages/*", "test", "idlelib")]
        sh("bash", "-c", f"tar -C {prefix} {' '.join(excluded)} --exclude=__pycache__ -cf - . "
           f"| tar -C {context / 'py'} -xf -")  # fmt: skip
        (context / "Containerfile").write_text(
            f"FROM {DEBIAN}\nCOPY py /usr/local\n"
            "RUN ldconfig && ln -sf python3.11 /usr/local/bin/python && python3 -m venv /tmp/v\n"
        )
        sh(*PODMAN, "build", *LIMITS, "--network", "host", "-t", BASE, context)


def build_image(work: Path) -> str:
    build_base(work)
    sh(
        *PODMAN, "build", *LIMITS, "--network", "host",
        "-v", f"{WHEELS}:{WHEELS}:ro", "-v", f"{CA_BUNDLE}:/host-ca.crt:ro",
        "--build-arg", f"PYTHON_IMAGE={BASE}",
        "--build-arg", f"PIP_FIND_LINKS={WHEELS}",
        "--build-arg", "PIP_EXTRA_INDEX_URL=https://pypi.org/simple",
        "--build-arg", "PIP_CERT=/host-ca.crt",
        "-t", IMAGE, ROOT,
    )  # fmt: skip
    return IMAGE


def image_size(image: str) -> int:
    return int(sh(*PODMAN, "image", "inspect", "--format", "{{.Size}}", image).strip())


def run_args(env: dict[str, str], mounts: list[Path]) -> list[str]:
    args = [*LIMITS, "--network", "host"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    for mount in mounts:
        args += ["-v", f"{mount}:{mount}"]
    return args


def open_up(path: Path) -> None:
    """Let the image's unprivileged user reach a socket under the test's private temp dirs."""
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        parent.chmod(stat.S_IMODE(parent.stat().st_mode) | 0o055)


if __name__ == "__main__":
    work = Path(sys.argv[1])
    print(build_image(work), image_size(IMAGE))
