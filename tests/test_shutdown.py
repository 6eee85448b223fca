"""A shutdown whose grace runs out before an answer does ends that stream properly: an
`error` event of kind `shutdown`, a complete body, the call settled, JSON-only logs."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from sqlalchemy import Engine

from tests.app_process import app_process
from tests.conftest import LocalModel, scalar, sign_in
from tests.sse import parse_lines


def test_shutdown_ends_a_live_stream_with_a_terminal_event(
    db_url: str,
    db_engine: Engine,
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
        "SHUTDOWN_GRACE_S": "6",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
    }
    log_path = tmp_path / "app.log"
    with app_process(env, log=log_path) as app:
        proc, url = app.proc, app.url
        # One word every 2 s: the answer needs minutes, far past the 6 s grace.
        local_model.fault("slow", delay_s=2.0)
        with sign_in(url, "grace-over@example.com") as client:
            with client.stream(
                "POST", "/api/chat", json={"message": "How do I ingest PDF files?"}
            ) as response:
                lines = response.iter_lines()
                for line in lines:
                    if line == "event: token":
                        signalled_at = log_path.stat().st_size
                        proc.send_signal(signal.SIGTERM)  # mid-answer
                        break
                # Reading to the end raises if the body is cut (an incomplete chunked body).
                events = parse_lines(lines)
        assert events[-1][0] == "error", events
        assert events[-1][1]["kind"] == "shutdown"
        assert "restarting" in events[-1][1]["message"]
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    row = scalar(
        db_engine,
        "SELECT c.status || ' ' || (c.cost_usd > 0)::text || ' ' || "
        "(r.settled_at IS NOT NULL)::text FROM llm_calls c JOIN users u ON u.id = c.user_id "
        "JOIN reservations r ON r.id = c.reservation_id "
        "WHERE u.email = 'grace-over@example.com' AND c.admission = 'allowed'",
    )
    assert row == "cancelled:shutdown true true"
    # Every line logged from the signal on is one JSON object (no plain-text tracebacks).
    after = log_path.read_bytes()[signalled_at:].decode().splitlines()
    assert after and all(json.loads(line) for line in after), after
