"""The LiteLLM proxy in front of the same upstream, for `python -m bench gateway`, when installed.

LiteLLM is an optional benchmark dependency (`pip install -e '.[bench]'`); without it the
gateway benchmark prints a "not installed" row instead. The proxy runs as its own process:
one worker, no database, a random master key (it refuses to start without one), and one
model forwarding to the upstream's OpenAI-compatible API: the bare gateway path.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.streams_procs import free_port, start, stop, wait_up

CONFIG = """model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {upstream}/v1
      api_key: not-needed
litellm_settings:
  drop_params: true
  telemetry: false
"""


def installed() -> bool:
    """Whether the proxy can run here: the `litellm` package and its `proxy` extra."""
    return (
        importlib.util.find_spec("litellm") is not None
        and importlib.util.find_spec("fastapi_sso") is not None
    )


def _command() -> list[str]:
    script = Path(sys.executable).with_name("litellm")
    if script.exists():
        return [str(script)]
    found = shutil.which("litellm")
    return [found] if found else [sys.executable, "-m", "litellm"]


@contextmanager
def litellm_proxy(upstream: str, model: str) -> Iterator[tuple[str, str]]:
    """Start the proxy (one worker) in front of `upstream` serving `model`; yields its URL and
    the key to send as `Authorization: Bearer`. Raises RuntimeError when it does not answer
    its liveness probe within 300 s."""
    with tempfile.TemporaryDirectory(prefix="ragship-bench-litellm-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(CONFIG.format(model=model, upstream=upstream))
        port = free_port()
        key = f"sk-{secrets.token_hex(32)}"
        env = {
            **os.environ,
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_MASTER_KEY": key,
        }
        proc = start(
            [*_command(), "--config", str(config), "--port", str(port), "--num_workers", "1"],
            env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_up(url, proc, "/health/liveliness")
            yield url, key
        finally:
            stop(proc)
