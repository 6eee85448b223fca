"""Secrets in the repository: every file version in the git history (committed files
included) is searched for the configured secrets' exact values and for the shapes of
common API keys. Each file version is read once (`git cat-file --batch`), so the cost
grows with the repository's distinct contents, not its number of commits.

Known fakes (test fixtures) are listed, one per line, in `.preflight-allow` at the root.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_BLOB_BYTES = 2_000_000  # larger files are data, not configuration
ALLOW_FILE = ".preflight-allow"
# Shapes of keys that must never be committed (prefixes documented by each provider).
PATTERNS = {
    "OpenAI API key": re.compile(rb"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    "Anthropic API key": re.compile(rb"sk-ant-[A-Za-z0-9_-]{20,}"),
    "Google OAuth client secret": re.compile(rb"GOCSPX-[A-Za-z0-9_-]{20,}"),
    "AWS access key id": re.compile(rb"AKIA[0-9A-Z]{16}"),
    "Slack token": re.compile(rb"xox[abprs]-[0-9A-Za-z-]{10,}"),
    "private key": re.compile(rb"-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
}


@dataclass(frozen=True)
class Finding:
    what: str  # a pattern's name, or the setting whose value was found
    path: str


def scan_history(repo: Path, secrets: dict[str, str]) -> list[Finding]:
    """Findings over every file version reachable from any ref. ``secrets``: setting name
    -> its configured value (values under 8 characters are not searched: too common).

    Raises RuntimeError when ``repo`` is not a git repository."""
    allowed = _allowed(repo)
    exact = {name: value.encode() for name, value in secrets.items() if len(value) >= 8}
    findings: set[Finding] = set()
    for path, content in _blobs(repo):
        for name, value in exact.items():
            if value in content:
                findings.add(Finding(name, path))
        for name, pattern in PATTERNS.items():
            for match in pattern.finditer(content):
                if match.group(0).decode(errors="replace") not in allowed:
                    findings.add(Finding(name, path))
                    break
    return sorted(findings, key=lambda f: (f.path, f.what))


def _allowed(repo: Path) -> set[str]:
    try:
        lines = (repo / ALLOW_FILE).read_text().splitlines()
    except OSError:
        return set()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], input=stdin, capture_output=True, check=True
        )
    except (OSError, subprocess.CalledProcessError) as err:
        raise RuntimeError(f"git {args[0]} failed in {repo}: {err}") from err
    return done.stdout


def _blobs(repo: Path) -> Iterator[tuple[str, bytes]]:
    """(path, content) for each distinct text blob in the history."""
    paths: dict[str, str] = {}
    for line in _git(repo, "rev-list", "--all", "--objects").decode().splitlines():
        sha, _, path = line.partition(" ")
        if path and sha not in paths:
            paths[sha] = path
    if not paths:
        return
    checked = _git(
        repo,
        "cat-file",
        "--batch-check=%(objectname) %(objecttype) %(objectsize)",
        stdin="\n".join(paths).encode() + b"\n",
    )
    wanted = [
        sha
        for sha, kind, size in (line.split() for line in checked.decode().splitlines())
        if kind == "blob" and int(size) <= MAX_BLOB_BYTES
    ]
    yield from _contents(repo, wanted, paths)


def _contents(
    repo: Path, shas: Iterable[str], paths: dict[str, str]
) -> Iterator[tuple[str, bytes]]:
    batch = _git(repo, "cat-file", "--batch", stdin="\n".join(shas).encode() + b"\n")
    offset = 0
    while offset < len(batch):
        header_end = batch.index(b"\n", offset)
        sha, _, size = batch[offset:header_end].decode().split()
        start = header_end + 1
        content = batch[start : start + int(size)]
        offset = start + int(size) + 1
        if b"\0" not in content[:8000]:  # text only
            yield paths[sha], content
