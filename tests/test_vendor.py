"""static/vendor/ holds exactly what tools/vendor.py fetched: every file listed in
CHECKSUMS with its sha256, nothing edited by hand, nothing unlisted."""

from __future__ import annotations

from pathlib import Path

from tools import vendor


def test_vendored_files_match_their_checksums() -> None:
    assert vendor.check() == []


def test_every_pinned_package_is_recorded() -> None:
    recorded = {line.split("  ")[2] for line in vendor.CHECKSUMS.read_text().splitlines()}
    assert recorded == {f"{p.name}@{p.version}" for p in vendor.PACKAGES}


def test_a_changed_or_unlisted_file_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "vendor"
    copy.mkdir()
    (copy / "CHECKSUMS").write_text(vendor.CHECKSUMS.read_text())
    for line in vendor.CHECKSUMS.read_text().splitlines():
        target = line.split("  ")[1]
        (copy / target).parent.mkdir(parents=True, exist_ok=True)
        (copy / target).write_bytes((vendor.VENDOR / target).read_bytes())
    assert vendor.check(copy) == []
    (copy / "marked" / "marked.esm.js").write_text("export const marked = 1;")
    (copy / "extra.js").write_text("")
    assert vendor.check(copy) == ["changed: marked/marked.esm.js", "not listed: extra.js"]
