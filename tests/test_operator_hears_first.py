"""The operator hears first: a wrong API key or a spent quota is an ERROR log line and an
alert (to a real webhook receiver), the user is told the truth about it, and the status page
follows the breaker within one request."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from tests.conftest import LocalModel, eventually, sign_in
from tests.sse import chat

QUESTION = "How do I run the tests?"
# Each test's database is empty, so nothing is retrieved: without this, the question would
# be answered "I don't know" locally (docs/context.md) and never reach the failing upstream.
TO_THE_MODEL: dict[str, Any] = {"answer_without_sources_locally": False}


@pytest.fixture
def keyed_model() -> Iterator[str]:
    """A local model that demands the API key "right-key", as a provider does."""
    server = BackgroundServer(create_local_model(api_key="right-key")).start()
    yield f"{server.url}/v1"
    server.stop()


def llm_line(app: BackgroundServer) -> dict[str, Any]:
    status = httpx.get(f"{app.url}/api/status").json()
    return next(c for c in status["components"] if c["name"] == "llm_upstream")


def test_wrong_api_key_is_an_error_log_and_one_alert_from_the_start_up_probe(
    start_app,
    new_database,
    keyed_model: str,
    webhook: tuple[str, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    url, received = webhook
    caplog.set_level(logging.ERROR, logger="ragship")
    app = start_app(
        **TO_THE_MODEL,
        database_url=new_database(),
        llm_base_url=keyed_model,
        llm_api_key="wrong-key",
        alert_webhook_url=url,
        status_probe_on_start=True,
    )
    # The start-up probe found the wrong key before the app served its first request.
    assert httpx.get(f"{app.url}/healthz").status_code == 200
    assert len(received) == 1, received
    assert "LLM_API_KEY" in received[0]["text"] and "401" in received[0]["text"]
    assert llm_line(app)["state"] == "down"
    with sign_in(app.url, "keyed@example.com") as client:
        events = chat(client, QUESTION)
    assert events[-1][0] == "error" and events[-1][1]["kind"] == "auth"
    assert events[-1][1]["message"].endswith("The operator has been alerted.")
    assert len(received) == 1  # one incident, one message (ALERT_COOLDOWN_S)
    lines = [r for r in caplog.records if r.name == "ragship.alerts" and r.levelno == logging.ERROR]
    assert lines and all("LLM_API_KEY" in r.message for r in lines)
    assert "alert sent to webhook" in lines[0].message


def test_without_a_channel_the_user_is_not_promised_an_alert(
    start_app,
    new_database,
    keyed_model: str,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level(logging.ERROR, logger="ragship")
    app = start_app(
        **TO_THE_MODEL,
        database_url=new_database(),
        llm_base_url=keyed_model,
        llm_api_key="wrong",
    )
    with sign_in(app.url, "nochannel@example.com") as client:
        events = chat(client, QUESTION)
    message = events[-1][1]["message"]
    assert events[-1][1]["kind"] == "auth" and "alerted" not in message
    assert "let the operator" in message
    errors = [r.message for r in caplog.records if r.levelno == logging.ERROR]
    assert any("LLM_API_KEY" in m and "no alert channel is configured" in m for m in errors)


def test_spent_quota_alerts_once_and_says_so_while_paused(
    start_app, new_database, local_model: LocalModel, webhook: tuple[str, list[dict[str, Any]]]
) -> None:  # type: ignore[no-untyped-def]
    url, received = webhook
    app = start_app(database_url=new_database(), alert_webhook_url=url, **TO_THE_MODEL)
    local_model.fault("insufficient_quota")
    with sign_in(app.url, "quota-alert@example.com") as client:
        first = chat(client, QUESTION)[-1][1]
        held = chat(client, QUESTION)[-1][1]  # held back by the breaker, no upstream call
    assert first["kind"] == held["kind"] == "insufficient_quota"
    assert first["message"].endswith("The operator has been alerted.")
    assert held["message"].endswith("The operator has been alerted.")
    assert len(received) == 1 and "billing" in received[0]["text"]
    assert llm_line(app)["state"] == "down"


def test_status_follows_the_breaker_within_one_request(
    start_app, new_database, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(
        **TO_THE_MODEL,
        database_url=new_database(),
        llm_max_retries=0,
        breaker_failures=2,
        breaker_cooldown_s=1,
        rate_limit_requests=1000,  # the poll below asks until the cool-down has passed
    )
    with sign_in(app.url, "streak@example.com") as client:
        assert chat(client, QUESTION)[-1][0] == "done"
        local_model.fault("server_error", times=2)
        assert chat(client, QUESTION)[-1][1]["kind"] == "server_error"
        assert llm_line(app)["state"] != "down"  # one failure: the breaker is still closed
        assert chat(client, QUESTION)[-1][1]["kind"] == "server_error"  # the breaker opens
        line = llm_line(app)
        assert line["state"] == "down" and "circuit breaker open" in line["detail"]
        status = httpx.get(f"{app.url}/api/status").json()
        assert status["overall"] == "down"
        assert [i["component"] for i in status["incidents"] if not i["closed_at"]] == [
            "llm_upstream"
        ]
        # The fault is used up; once the cool-down passes, the next answer closes it.
        eventually(lambda: chat(client, QUESTION)[-1][0] == "done", what="a good answer")
    status = httpx.get(f"{app.url}/api/status").json()
    assert llm_line(app)["state"] == "operational" and status["overall"] == "operational"
    assert all(i["closed_at"] for i in status["incidents"])


def test_start_up_probe_and_the_provider_line(start_app, new_database) -> None:  # type: ignore[no-untyped-def]
    configured = start_app(database_url=new_database(), status_probe_on_start=True)
    assert httpx.get(f"{configured.url}/healthz").status_code == 200  # served after the probe
    status = httpx.get(f"{configured.url}/api/status").json()
    assert all(c["detail"] != "not probed yet" for c in status["components"])
    assert status["overall"] == "operational"
    assert status["provider"]["name"] == "127.0.0.1"  # LLM_BASE_URL's host, not "OpenAI"
    built_in = start_app(database_url=new_database(), llm_base_url=None)
    assert httpx.get(f"{built_in.url}/api/status").json()["provider"] is None
    assert "Upstream:" not in httpx.get(f"{built_in.url}/status").text
