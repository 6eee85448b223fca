"""Alerts reach a real webhook receiver and a real SMTP server, once per incident."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import text

from app.caps.budget import periods
from app.db import make_sync_engine
from app.localmodel.runner import BackgroundServer
from tests.app_process import free_port
from tests.conftest import LocalModel, eventually, sign_in
from tests.sse import chat


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


def test_error_burst_raises_exactly_one_error_rate_alert(
    start_app,
    new_database,
    local_model: LocalModel,
    webhook: tuple[str, list[dict[str, Any]]],
    smtp: tuple[int, Inbox],  # type: ignore[no-untyped-def]
) -> None:
    url, received = webhook
    port, inbox = smtp
    app: BackgroundServer = start_app(
        database_url=new_database(),
        admin_emails="ops@example.com",
        alert_webhook_url=url,
        alert_email_to="oncall@example.com",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        llm_max_retries=0,
        breaker_failures=1000,
        rate_limit_requests=1000,
        # The database holds no documents: without this, every question would be answered
        # "I don't know" locally (docs/context.md) and never reach the failing upstream.
        answer_without_sources_locally=False,
    )
    local_model.fault("server_error", times=12)
    with sign_in(app.url, "burst@example.com") as client:
        for _ in range(12):
            assert chat(client, "How do I run the tests?")[-1][1]["kind"] == "server_error"
    with sign_in(app.url, "ops@example.com") as ops:
        first = ops.post("/api/admin/dashboard/alerts/evaluate").json()
        again = ops.post("/api/admin/dashboard/alerts/evaluate").json()  # within the cooldown
        listed = ops.get("/api/admin/dashboard/alerts").json()
    assert [a["rule"] for a in first] == ["error_rate"] and again == []
    assert len(received) == 1 and "error rate" in received[0]["text"].lower()
    assert "100% of 12 calls failed" in received[0]["text"]
    eventually(lambda: len(inbox.messages) == 1, what="the alert email")
    assert inbox.messages[0]["To"] == "oncall@example.com"
    assert "LLM error rate high" in inbox.messages[0]["Subject"]
    assert listed[0]["rule"] == "error_rate" and listed[0]["delivered"] == "webhook,email"


def test_healthy_traffic_raises_nothing(
    start_app, new_database, webhook: tuple[str, list[dict[str, Any]]]
) -> None:  # type: ignore[no-untyped-def]
    url, received = webhook
    app: BackgroundServer = start_app(
        database_url=new_database(),
        admin_emails="ops@example.com",
        alert_webhook_url=url,
        rate_limit_requests=1000,
    )
    with sign_in(app.url, "calm@example.com") as client:
        for _ in range(10):
            assert chat(client, "How do I run the tests?")[-1][0] == "done"
    with sign_in(app.url, "ops@example.com") as ops:
        assert ops.post("/api/admin/dashboard/alerts/evaluate").json() == []
    assert received == []


@pytest.mark.parametrize(
    ("spent", "rule"), [("8.50", "global_cap_80"), ("10.00", "global_cap_100")]
)
def test_global_cap_alerts_at_80_and_100_percent(
    start_app, new_database, webhook, spent: str, rule: str
) -> None:  # type: ignore[no-untyped-def]
    url, received = webhook
    database = new_database()
    app: BackgroundServer = start_app(
        database_url=database,
        admin_emails="ops@example.com",
        alert_webhook_url=url,
        global_daily_cap_usd="10",
    )
    engine = make_sync_engine(database)
    with engine.begin() as conn:  # the day's spend so far, as the books would hold it
        conn.execute(
            text("INSERT INTO spend_counters VALUES ('global', :day, :spent, 0)"),
            {"day": periods()[0], "spent": spent},
        )
    engine.dispose()
    with sign_in(app.url, "ops@example.com") as ops:
        fired = [a["rule"] for a in ops.post("/api/admin/dashboard/alerts/evaluate").json()]
    assert fired == [rule]
    assert len(received) == 1 and spent in received[0]["text"]


def test_each_rule_has_its_own_cooldown(start_app, new_database, webhook) -> None:  # type: ignore[no-untyped-def]
    """A second rule firing inside the first one's cooldown is a new incident: it is sent."""
    url, received = webhook
    database = new_database()
    app: BackgroundServer = start_app(
        database_url=database,
        admin_emails="ops@example.com",
        alert_webhook_url=url,
        global_daily_cap_usd="10",
        alert_cooldown_s=3600,
    )
    engine = make_sync_engine(database)

    def spent(amount: str) -> None:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO spend_counters VALUES ('global', :day, :spent, 0) "
                    "ON CONFLICT (scope, period) DO UPDATE SET spent_usd = :spent"
                ),
                {"day": periods()[0], "spent": amount},
            )

    try:
        with sign_in(app.url, "ops@example.com") as ops:

            def evaluate() -> list[str]:
                return [a["rule"] for a in ops.post("/api/admin/dashboard/alerts/evaluate").json()]

            spent("8.50")
            assert evaluate() == ["global_cap_80"]
            spent("10.00")  # within global_cap_80's cooldown, another rule fires
            assert evaluate() == ["global_cap_100"]
            assert evaluate() == []  # and each is now cooling down on its own
    finally:
        engine.dispose()
    assert [r["text"].partition("\n")[0] for r in received] == [
        "*Global daily cap at 80%*",
        "*Global daily cap reached*",
    ]
