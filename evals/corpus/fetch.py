"""The held-out corpus: Python 3.11's HTML manual from Debian's `python3.11-doc` package.

Fetched with `apt-get download` and unpacked with `dpkg-deb -x` into a cache folder that
git ignores (`.data/corpus/`); nothing of it is committed. `subset` is the part that is
ingested: the tutorial, the FAQ and the reference pages of `LIBRARY_MODULES`.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

PACKAGE = "python3.11-doc"
CACHE = Path(__file__).resolve().parents[2] / ".data" / "corpus"
HTML_DIR = Path("usr/share/doc/python3.11/html")
SUBSET_DIRS = ("tutorial", "faq")
LIBRARY_MODULES = (
    "argparse", "base64", "bisect", "collections", "contextlib", "copy", "csv", "dataclasses",
    "datetime", "decimal", "enum", "fnmatch", "fractions", "functools", "glob", "gzip",
    "hashlib", "heapq", "itertools", "json", "logging", "math", "pathlib", "pickle", "random",
    "re", "secrets", "shutil", "sqlite3", "statistics", "string", "subprocess", "tempfile",
    "textwrap", "time", "timeit", "unittest", "urllib.parse", "uuid", "venv", "zipfile",
)  # fmt: skip


class FetchError(Exception):
    """The package could not be downloaded or unpacked; the message says why."""


def corpus_root(cache: Path = CACHE) -> Path:
    """The manual's HTML folder, downloading and unpacking the package when missing.

    Raises `FetchError` when apt-get or dpkg-deb fails (no network, not Debian)."""
    unpacked = cache / PACKAGE
    root = unpacked / HTML_DIR
    if (root / "index.html").exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ragship-corpus-") as tmp:
        _run(["apt-get", "download", PACKAGE], cwd=Path(tmp))
        debs = sorted(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        if not debs:
            raise FetchError(f"apt-get download {PACKAGE} left no .deb file")
        _run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], cwd=Path(tmp))
        (unpacked / "VERSION").write_text(debs[-1].name + "\n")
    return root


def subset(root: Path) -> list[Path]:
    """The files to ingest, in a stable order."""
    files = [p for d in SUBSET_DIRS for p in sorted((root / d).glob("*.html"))]
    return files + [root / "library" / f"{m}.html" for m in LIBRARY_MODULES]


def _run(command: list[str], *, cwd: Path) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        raise FetchError(f"{' '.join(command)} failed: {detail.strip()[:300]}") from err
