"""Streams survive real operations: keep-alive comments, and graceful shutdown of a replica."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from app.localmodel.runner import BackgroundServer
from tests.app_process import app_process
from tests.conftest import LocalModel, sign_in


def test_heartbeat_comments_keep_a_slow_stream_alive(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    app: BackgroundServer = start_app(stream_heartbeat_s=0.2)
    # Four seconds of silence before the first token: some twenty heartbeats are due, and the
    # three asked for below arrive even on a machine too busy to keep to the interval.
    local_model.fault("stall", delay_s=4.0)
    with sign_in(app.url, "heartbeat@example.com") as client:
        with client.stream(
            "POST", "/api/chat", json={"message": "How do I run the tests?"}
        ) as response:
            lines = list(response.iter_lines())
    pings = [line for line in lines if line.startswith(": ping")]
    assert len(pings) >= 3
    assert "event: done" in lines


def test_sigterm_lets_a_live_answer_finish(
    db_url: str,
    local_model: LocalModel,
    tmp_path: Path,
    corpus: object,
    onnx_env: dict[str, str],
) -> None:
    env = {
        **onnx_env,
        "DATABASE_URL": db_url,
        "LLM_BASE_URL": local_model.base_url,
        "DATA_DIR": str(tmp_path),
        "SHUTDOWN_GRACE_S": "60",  # far above the answer's few seconds, on a busy machine too
        "LOG_LEVEL": "warning",
    }
    with app_process(env) as app:
        proc, url = app.proc, app.url
        local_model.fault("slow", delay_s=0.05)  # about three seconds of answer
        with sign_in(url, "shutdown@example.com") as client:
            with client.stream(
                "POST", "/api/chat", json={"message": "How do I ingest PDF files?"}
            ) as response:
                lines = response.iter_lines()
                for line in lines:
                    if line == "event: token":
                        proc.send_signal(signal.SIGTERM)  # mid-answer
                        signalled = time.perf_counter()
                        break
                rest = list(lines)
        assert "event: done" in rest
        # uvicorn finishes its graceful shutdown, then re-raises the signal it caught.
        assert proc.wait(timeout=90) in (0, -signal.SIGTERM)
        print(f"answer finished {time.perf_counter() - signalled:.1f}s after SIGTERM; clean exit")
        with httpx.Client() as probe:
            try:
                probe.get(f"{url}/healthz", timeout=1)
                raise AssertionError("the app still answers after shutdown")
            except httpx.ConnectError:
                pass
