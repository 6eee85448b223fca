"""`make install` takes CPU PyTorch, as the image does: on Linux, PyPI's torch is the
multi-GB CUDA build (with its nvidia-* packages), which a plain `pip install torch` picks."""

from __future__ import annotations

import os
import re
import subprocess

from tests.conftest import ROOT
from tests.test_deploy_files import _pins, _stages


def _install_commands() -> list[str]:
    """The commands `make install` runs from a fresh clone, as make expands them (-n: none is
    run; -B: as if nothing were installed yet)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TORCH_INDEX", "MAKEFLAGS")}
    done = subprocess.run(  # the Makefile's own index, not a mirror this shell may set
        ["make", "--no-print-directory", "-n", "-B", "install"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.splitlines()


def test_make_install_takes_torch_alone_from_the_images_cpu_index() -> None:
    (export_index,) = re.findall(
        r"PIP_EXTRA_INDEX_URL=(\S+)", _stages((ROOT / "Dockerfile").read_text())[1]
    )
    torch_lines = [line for line in _install_commands() if re.search(r"\btorch==", line)]
    installs = [line for line in torch_lines if "pip install" in line]
    assert len(installs) == 1, torch_lines
    words = installs[0].split()
    # The CPU index, the image's: its 2.13.0+cpu outranks PyPI's 2.13.0 (PEP 440 local version).
    assert words[words.index("--extra-index-url") + 1] == export_index
    # Only torch from there: its dependencies come from PyPI with the project's install.
    assert "--no-deps" in words
    # A CUDA 2.13.0 an older install left satisfies ==2.13.0: only --upgrade replaces it.
    assert "--upgrade" in words
    (pin,) = [word for word in words if word.startswith("torch==")]
    assert pin == "torch==" + _pins("torch.lock")["torch"].removesuffix("+cpu")
