"""The streams benchmark's upstream: the built-in local model, paced, in its own process(es).

`python -m uvicorn --factory bench.streams_model:paced_model` serves it; the pace (seconds a
piece) comes from the environment variable TOKEN_DELAY_ENV, which `model_command` sets, so
`bench streams --token-delay-s` can lengthen every answer: the longer each answer, the
fewer arrivals a second hold the same number of answers open at once.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import httpx
from fastapi import FastAPI

TOKEN_DELAY_S = 0.25  # the default pace: about 38 s for the bench's answer
TOKEN_DELAY_ENV = "BENCH_STREAMS_TOKEN_DELAY_S"


def model_command(port: str, workers: int) -> list[str]:
    """uvicorn serving `paced_model`; with `workers` > 1, that many processes on one port
    (uvicorn's supervisor), each pacing its own streams."""
    return [
        sys.executable, "-m", "uvicorn", "--factory", "bench.streams_model:paced_model",
        "--port", port, "--log-level", "warning",
        *(["--workers", str(workers)] if workers > 1 else []),
    ]  # fmt: skip


def model_env(env: dict[str, str], token_delay_s: float) -> dict[str, str]:
    """`env` with the pace `paced_model` reads."""
    return {**env, TOKEN_DELAY_ENV: repr(token_delay_s)}


def paced_model() -> FastAPI:
    """The local model at the pace in TOKEN_DELAY_ENV (default TOKEN_DELAY_S), for uvicorn
    --factory; raises ValueError on a pace that is not a positive number."""
    from app.localmodel.server import create_local_model

    delay = float(os.environ.get(TOKEN_DELAY_ENV, TOKEN_DELAY_S))
    if not delay > 0:
        raise ValueError(f"{TOKEN_DELAY_ENV} must be a positive number of seconds, not {delay}")
    return create_local_model(token_delay_s=delay)


def upstream_request(model_url: str, question: str) -> dict[str, Any]:
    """The streamed request the model last received for `question`, read back from its
    `/_stats` (the direct side's request). With several model processes only the one that
    served it has it: each new connection may reach another, so ask until one has
    (RuntimeError after 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        stats = httpx.get(f"{model_url}/_stats", timeout=30).json()
        messages = stats["last_messages"] or [{}]
        if str(messages[-1].get("content", "")).endswith(question):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no model process has seen a request for {question!r}")
    sampling = {k: v for k, v in stats["last_sampling"].items() if v is not None}
    return {
        "model": stats["last_model"],
        "messages": stats["last_messages"],
        **sampling,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
