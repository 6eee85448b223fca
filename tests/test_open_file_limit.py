"""`raise_open_file_limit`: a process started under a low soft limit on open files (as
systemd's default of 1,024 would start it) runs with its hard limit, since each live answer
holds two descriptors. Run in a child started by util-linux's `prlimit`, so that the limits
are a real process's, set by the kernel."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = (
    "import resource; from app.startup import raise_open_file_limit; "
    "print(*raise_open_file_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))"
)


@pytest.mark.parametrize(
    ("soft", "hard", "expected"),
    [
        (256, 4096, "256 4096 4096 4096"),  # raised to the hard limit
        (4096, 4096, "4096 4096 4096 4096"),  # already there: unchanged
    ],
)
def test_the_soft_limit_is_raised_to_the_hard_one(soft: int, hard: int, expected: str) -> None:
    out = subprocess.run(
        ["prlimit", f"--nofile={soft}:{hard}", sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == expected.split()
