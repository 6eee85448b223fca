"""Vendor the browser's third-party code into static/vendor/ from the npm registry.

    python -m tools.vendor          # fetch the pinned versions, rewrite static/vendor/
    python -m tools.vendor --check  # verify static/vendor/ against CHECKSUMS (no network)

There is no build step: the pages import these files as they are. Each package is fetched
with `npm pack NAME@VERSION` (npm checks the registry's integrity hash), the listed files
are copied, and `static/vendor/CHECKSUMS` records `sha256  path  package@version` per file,
so a reviewer sees exactly what changed and a test (tests/test_vendor.py) refuses a file
edited by hand. To upgrade a package, change its version below and rerun.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"
CHECKSUMS = VENDOR / "CHECKSUMS"


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    files: dict[str, str]  # path inside the package -> path under static/vendor/


PACKAGES = [
    Package(
        "marked",
        "18.2.1",
        {"lib/marked.esm.js": "marked/marked.esm.js", "LICENSE": "marked/LICENSE"},
    ),
    Package(
        "dompurify",
        "3.5.0",
        {"dist/purify.es.mjs": "dompurify/purify.es.mjs", "LICENSE": "dompurify/LICENSE"},
    ),
    Package(
        "@highlightjs/cdn-assets",
        "11.12.0",
        {
            "es/highlight.min.js": "highlight/highlight.min.js",
            "styles/github.min.css": "highlight/github.min.css",
            "styles/github-dark.min.css": "highlight/github-dark.min.css",
            "LICENSE": "highlight/LICENSE",
        },
    ),
    Package(
        "uplot",
        "1.6.32",
        {
            "dist/uPlot.esm.js": "uplot/uPlot.esm.js",
            "dist/uPlot.min.css": "uplot/uPlot.min.css",
            "LICENSE": "uplot/LICENSE",
        },
    ),
    Package(
        "axe-core",
        "4.14.1",
        {"axe.min.js": "axe-core/axe.min.js", "LICENSE": "axe-core/LICENSE"},
    ),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strip_source_map(path: Path) -> None:
    """Drop a trailing `//# sourceMappingURL=` line: the map is not vendored."""
    if path.suffix not in {".js", ".mjs", ".css"}:
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if "sourceMappingURL=" not in line]
    if kept != lines:
        path.write_text("".join(kept), encoding="utf-8")


def fetch(package: Package, into: Path) -> None:
    """`npm pack` one package and copy its listed files under `into`."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = f"{package.name}@{package.version}"
        subprocess.run(["npm", "pack", spec, "--silent"], cwd=tmp, check=True, text=True)
        (tarball,) = Path(tmp).glob("*.tgz")
        with tarfile.open(tarball) as archive:
            archive.extractall(tmp, filter="data")
        for inside, target in package.files.items():
            destination = into / target
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(tmp) / "package" / inside, destination)
            _strip_source_map(destination)


def write_checksums() -> None:
    lines = []
    for package in PACKAGES:
        for target in package.files.values():
            digest = sha256(VENDOR / target)
            lines.append(f"{digest}  {target}  {package.name}@{package.version}\n")
    CHECKSUMS.write_text("".join(lines), encoding="utf-8")


def check(vendor: Path = VENDOR) -> list[str]:
    """Problems with a vendor folder (static/vendor/ by default) against its CHECKSUMS:
    missing, changed or unlisted files, as "missing: PATH" lines. Empty when clean."""
    problems = []
    listed = set()
    checksums = vendor / CHECKSUMS.name
    for line in checksums.read_text(encoding="utf-8").splitlines():
        digest, target, _spec = line.split("  ")
        listed.add(target)
        path = vendor / target
        if not path.is_file():
            problems.append(f"missing: {target}")
        elif sha256(path) != digest:
            problems.append(f"changed: {target}")
    for path in sorted(vendor.rglob("*")):
        name = path.relative_to(vendor).as_posix()
        if path.is_file() and path != checksums and name not in listed:
            problems.append(f"not listed: {name}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, fetch nothing")
    args = parser.parse_args()
    if not args.check:
        if VENDOR.exists():
            shutil.rmtree(VENDOR)
        VENDOR.mkdir(parents=True)
        for package in PACKAGES:
            fetch(package, VENDOR)
        write_checksums()
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
