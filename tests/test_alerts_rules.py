"""The alert rules and the alerter, called directly on a database seeded with calls,
rollups, guardrail triggers and spend: each rule fires above its threshold with its own
message and stays quiet at it; each firing rule is sent once per cooldown, to a real
webhook receiver and a real SMTP server. No app: the fast checks `make mutation-db GROUP=alerts` runs on
app/observability/alerts.py (docs/mutation.md); tests/test_alerts.py goes through the app."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, text
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.background import repeat
from app.caps.budget import GLOBAL, periods
from app.db import make_async_engine, make_sync_engine
from app.observability.alerts import ALERT_LOCK, Alerter, Firing, evaluate
from tests.app_process import free_port
from tests.conftest import make_settings
from tests.direct import direct_services

CALLS = (
    "INSERT INTO llm_calls (created_at, feature, model, admission, status, cost_usd, "
    "reserved_usd, latency_ms) SELECT now() - make_interval(secs => :ago), :feature, 'm', "
    ":admission, :status, :cost, :cost, :latency FROM generate_series(1, :n)"
)


class Seed:
    """A fresh database and ways to put rows in it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_sync_engine(url)

    def calls(
        self,
        n: int,
        *,
        ago_s: float = 10,
        status: str = "ok",
        admission: str = "allowed",
        cost: str = "0",
        latency: float = 100,
        feature: str = "chat",
    ) -> None:
        params = {"n": n, "ago": ago_s, "status": status, "admission": admission}
        params |= {"cost": Decimal(cost), "latency": latency, "feature": feature}
        self.sql(CALLS, **params)

    def sql(self, sql: str, **params: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql), params)

    def evaluate(self, **settings: object) -> list[Firing]:
        async def go() -> list[Firing]:
            engine = make_async_engine(self.url)
            try:
                async with async_sessionmaker(engine)() as session:
                    return await evaluate(session, make_settings(**settings))
            finally:
                await engine.dispose()

        return asyncio.run(go())


@pytest.fixture
def seed(new_database: Callable[[], str]) -> Any:
    made = Seed(new_database())
    yield made
    made.engine.dispose()


def test_ten_healthy_calls_fire_nothing(seed: Seed) -> None:
    seed.calls(10)
    assert seed.evaluate() == []
    # No spend counter today yet: nothing spent, not even a $1 cap's worth.
    assert seed.evaluate(global_daily_cap_usd=Decimal(1)) == []


def test_the_error_rate_fires_above_its_threshold_once_there_are_enough_calls(seed: Seed) -> None:
    seed.calls(8)
    seed.calls(2, status="error:server")
    assert seed.evaluate() == []  # 20 %: at the threshold
    seed.calls(1, status="error:timeout")
    assert seed.evaluate() == [
        Firing(
            "error_rate",
            "LLM error rate high",
            "27% of 11 calls failed in the last 5 minutes (threshold 20%).",
        )
    ]
    assert seed.evaluate(alert_min_calls=12) == []  # too few calls to judge
    assert [f.rule for f in seed.evaluate(alert_min_calls=11)] == ["error_rate"]
    seed.calls(30, status="error:server", ago_s=600)  # outside the 5 minutes
    seed.calls(30, status="error:server", ago_s=330)  # just outside them (not 6 minutes)
    assert [f.text for f in seed.evaluate(alert_error_rate=0.5)] == []


def test_the_refusal_rate_fires_above_its_threshold(seed: Seed) -> None:
    seed.calls(5)
    seed.calls(5, admission="rate_limit", status="refused")
    assert seed.evaluate() == []  # 50 %: at the threshold
    seed.calls(1, admission="user_daily_cap", status="refused")
    assert seed.evaluate() == [
        Firing(
            "refusal_rate",
            "Cap refusals spiking",
            "55% of 11 requests were refused by a cap or guardrail in the last 5 minutes.",
        )
    ]


def test_latency_fires_when_the_5_minute_p95_passes_a_multiple_of_the_24_hour_one(
    seed: Seed,
) -> None:
    seed.calls(1000, ago_s=7200, latency=100)  # the day's p95: 100 ms
    seed.calls(50, ago_s=7200, latency=5000, feature="summary")  # not chat: not counted
    seed.calls(1000, ago_s=88_200, latency=10_000)  # 24.5 hours ago: not in the day's p95
    seed.calls(10, latency=300)
    assert seed.evaluate() == []  # 3x: at the threshold
    seed.calls(10, latency=400)
    seed.calls(10, latency=9000, admission="rate_limit", status="refused")  # not counted
    assert seed.evaluate() == [
        Firing(
            "latency",
            "Latency high",
            "p95 latency 400 ms over the last 5 minutes, 4.0x the 24-hour p95 (100 ms).",
        )
    ]


def _rollup(seed: Seed, hours_ago: int, cost: str) -> None:
    seed.sql(
        "INSERT INTO call_rollups_hourly (hour, feature, model, outcome, calls, cost_usd) "
        "VALUES (date_trunc('hour', now()) - make_interval(hours => :h), 'chat', 'm', 'ok', 1, :c)",
        h=hours_ago,
        c=Decimal(cost),
    )


def test_a_spend_spike_is_the_last_hour_over_a_multiple_of_the_trailing_average(
    seed: Seed,
) -> None:
    seed.calls(1, cost="0.30", ago_s=60)
    assert seed.evaluate() == []  # no trailing spend: no average to compare with
    for hours_ago in (1, 2, 23):  # $2.40 over the trailing 24 hours: $0.10 an hour
        _rollup(seed, hours_ago, "0.80")
    _rollup(seed, 30, "100")  # before the trailing day
    _rollup(seed, 24, "100")  # its hour began more than 24 hours ago: before it too
    _rollup(seed, 0, "100")  # this hour: not part of the trailing average
    assert seed.evaluate() == []  # $0.30: 3x, at the threshold
    seed.calls(1, cost="0.01", ago_s=3000)
    seed.calls(1, cost="5", ago_s=4000)  # more than an hour ago
    assert seed.evaluate() == [
        Firing(
            "spend_spike",
            "Spend spike",
            "$0.3100 spent in the last hour, 3.1x the trailing hourly average ($0.1000).",
        )
    ]


def test_the_hourly_spend_limit_fires_above_it(seed: Seed) -> None:
    seed.calls(1, cost="0.25")
    assert seed.evaluate(alert_spend_hour_usd=Decimal("0.25")) == []
    seed.calls(1, cost="0.01")
    assert seed.evaluate(alert_spend_hour_usd=Decimal("0.25")) == [
        Firing(
            "spend_hour",
            "Hourly spend over limit",
            "$0.2600 spent in the last hour (alert at $0.25).",
        )
    ]


def test_guardrail_triggers_fire_at_their_count_in_5_minutes(seed: Seed) -> None:
    insert = (
        "INSERT INTO guardrail_triggers (created_at, layer, rule, action) "
        "SELECT now() - make_interval(secs => :ago), 'input', 'r', 'flag' FROM generate_series(1, :n)"
    )
    seed.sql(insert, ago=10, n=4)
    seed.sql(insert, ago=600, n=10)  # older than 5 minutes
    seed.sql(insert, ago=330, n=10)  # just older (not 6 minutes)
    assert seed.evaluate(alert_guardrail_triggers=5) == []
    seed.sql(insert, ago=10, n=1)
    assert seed.evaluate(alert_guardrail_triggers=5) == [
        Firing(
            "guardrail_spike",
            "Guardrail triggers spiking",
            "5 guardrail triggers in the last 5 minutes (alert at 5): an attack, or a "
            "misconfigured filter. See the guardrails section of the admin dashboard.",
        )
    ]


@pytest.mark.parametrize(
    ("spent", "rule", "message"),
    [
        ("15.99", None, None),
        ("16", "global_cap_80", "Global daily cap at 80%: $16.000000 of $20 spent today."),
        ("19.99", "global_cap_80", "Global daily cap at 80%: $19.990000 of $20 spent today."),
        (
            "20",
            "global_cap_100",
            "Global daily cap reached: $20.000000 of $20 spent today: the assistant is paused "
            "until 00:00 UTC.",
        ),
    ],
)
def test_the_global_cap_alerts_at_80_and_100_percent_of_todays_spend(
    seed: Seed, spent: str, rule: str | None, message: str | None
) -> None:
    day, month = periods()
    seed.sql("INSERT INTO spend_counters VALUES (:s, :p, :v, 0)", s=GLOBAL, p=month, v=Decimal(30))
    seed.sql("INSERT INTO spend_counters VALUES ('user:x', :p, :v, 0)", p=day, v=Decimal(30))
    seed.sql("INSERT INTO spend_counters VALUES (:s, :p, :v, 0)", s=GLOBAL, p=day, v=Decimal(spent))
    firings = seed.evaluate(global_daily_cap_usd=Decimal(20))
    assert [(f.rule, f"{f.subject}: {f.text}") for f in firings] == (
        [(rule, message)] if rule else []
    )
    assert seed.evaluate(global_daily_cap_usd=Decimal(0)) == []  # no cap: no alert


# --- the alerter: cooldown per rule, delivery, one replica at a time


def _run_once(seed: Seed, **settings: object) -> list[tuple[str, str]]:
    async def go() -> list[tuple[str, str]]:
        async with direct_services(seed.url, **settings) as services:
            alerter = Alerter(services)
            try:
                return [(a.rule, a.message) for a in await alerter.run_once()]
            finally:
                await alerter.close()

    return asyncio.run(go())


def _alerts(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT rule, delivered FROM alerts ORDER BY id")).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_each_rule_is_sent_once_per_its_own_cooldown_and_delivery_is_recorded(
    seed: Seed,
    webhook: tuple[str, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, received = webhook
    settings = {"alert_webhook_url": url, "global_daily_cap_usd": Decimal(20)}
    seed.calls(10, status="error:server")
    with caplog.at_level(logging.ERROR, logger="ragship.alerts"):
        sent = _run_once(seed, **settings)
    error = "LLM error rate high: 100% of 10 calls failed in the last 5 minutes (threshold 20%)."
    assert sent == [("error_rate", error)]
    assert received == [
        {"text": "*LLM error rate high*\n100% of 10 calls failed in the last 5 minutes "
         "(threshold 20%)."}
    ]  # fmt: skip
    assert [r.getMessage() for r in caplog.records] == [
        f"ALERT error_rate: {error} (sent to webhook)"
    ]
    assert _alerts(seed.engine) == [("error_rate", "webhook")]
    assert _run_once(seed, **settings) == []  # the same incident: within the cooldown
    day, _ = periods()  # another rule fires inside the first one's cooldown: it is sent
    seed.sql("INSERT INTO spend_counters VALUES (:s, :p, 16, 0)", s=GLOBAL, p=day)
    assert [rule for rule, _ in _run_once(seed, **settings)] == ["global_cap_80"]
    assert len(received) == 2
    # past the cooldown, still firing: sent again; nowhere to send it, so logged as such
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="ragship.alerts"):
        again = _run_once(seed, alert_cooldown_s=0, global_daily_cap_usd=Decimal(20))
    assert [rule for rule, _ in again] == ["error_rate", "global_cap_80"]
    assert caplog.records[0].getMessage() == f"ALERT error_rate: {error} (sent to nowhere)"
    assert _alerts(seed.engine)[2:] == [("error_rate", ""), ("global_cap_80", "")]


def test_while_another_replica_evaluates_this_one_sends_nothing(seed: Seed) -> None:
    seed.calls(10, status="error:server")
    with seed.engine.begin() as conn:  # another replica's evaluation holds the lock
        conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ALERT_LOCK})
        assert _run_once(seed) == []
    assert _alerts(seed.engine) == []
    assert [rule for rule, _ in _run_once(seed)] == ["error_rate"]


class Inbox:
    """What a real SMTP server (aiosmtpd) received."""

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


SCORES = (
    "INSERT INTO quality_scores (call_id, call_at, model, prompt_version, status, attempts, "
    "claimed_by, claimed_at, groundedness, relevance, citation_validity, judge_cost_usd, "
    "detail) SELECT id, created_at, 'm', 'v1', 'scored', 1, '', now(), :g, 0.9, 0.9, 0, '' "
    "FROM llm_calls WHERE feature = :feature"
)


def test_every_rule_run_once_finds_is_sent_to_every_channel_and_recorded(
    seed: Seed,
    webhook: tuple[str, list[dict[str, Any]]],
    smtp: tuple[int, Inbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The rules of evaluate, the prompt-size rule and the quality rule together, each sent
    to the webhook and by email; a message whose text holds ": " itself is split at its
    subject's."""
    (url, received), (port, inbox) = webhook, smtp
    day, _ = periods()
    seed.sql("INSERT INTO spend_counters VALUES (:s, :p, 20, 0)", s=GLOBAL, p=day)
    # Ten answers whose prompts filled far more than any model's window.
    seed.sql(
        "INSERT INTO llm_calls (created_at, feature, model, admission, status, cost_usd, "
        "reserved_usd, latency_ms, input_tokens) SELECT now() - make_interval(secs => 10), "
        "'chat', 'm', 'allowed', 'ok', 0, 0, 100, 1000000 FROM generate_series(1, 10)"
    )
    seed.sql(SCORES, g=0.2, feature="chat")  # judged poorly now ...
    seed.calls(5, ago_s=7200, feature="before")  # ... and well two hours ago
    seed.sql(SCORES, g=0.9, feature="before")
    settings = {
        "alert_webhook_url": url,
        "global_daily_cap_usd": Decimal(20),
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "alert_email_to": ["ops@example.com"],
    }
    with caplog.at_level(logging.ERROR, logger="ragship.alerts"):
        sent = _run_once(seed, **settings)
    assert [rule for rule, _ in sent] == ["global_cap_100", "prompt_size", "quality_drop"]
    cap_subject = "Global daily cap reached"
    cap_text = "$20.000000 of $20 spent today: the assistant is paused until 00:00 UTC."
    assert sent[0][1] == f"{cap_subject}: {cap_text}"
    assert sent[1][1].startswith("Prompts near the context window: p95 prompt 1000000 tokens")
    assert sent[2][1].startswith("Answer quality dropped: groundedness of m / v1: 0.20 ")
    assert received[0] == {"text": f"*{cap_subject}*\n{cap_text}"}
    assert len(received) == 3
    assert [(m["Subject"], m.get_payload().strip()) for m in inbox.messages][0] == (
        f"[ragship] {cap_subject}",
        cap_text,
    )
    assert [m["Subject"] for m in inbox.messages[1:]] == [
        "[ragship] Prompts near the context window",
        "[ragship] Answer quality dropped",
    ]
    assert caplog.records[0].getMessage() == (
        f"ALERT global_cap_100: {cap_subject}: {cap_text} (sent to webhook, email)"
    )
    assert _alerts(seed.engine) == [
        ("global_cap_100", "webhook,email"),
        ("prompt_size", "webhook,email"),
        ("quality_drop", "webhook,email"),
    ]


def test_the_alerter_runs_every_interval_and_outlives_a_failed_run(
    seed: Seed, caplog: pytest.LogCaptureFixture
) -> None:
    """The alerter on the app's timer (app/background.py, as the lifespan runs it): a run that
    fails (here a table missing, as during a botched migration) is logged with its
    traceback, and the next run, an interval later, sends the alert."""
    seed.calls(10, status="error:server")
    seed.sql("ALTER TABLE guardrail_triggers RENAME TO guardrail_triggers_away")

    async def until(done: Callable[[], object]) -> None:
        deadline = time.monotonic() + 60  # polled: a loaded machine takes what it takes
        while not done():
            assert time.monotonic() < deadline, "the alerter never got there"
            await asyncio.sleep(0.05)

    async def go() -> None:
        async with direct_services(seed.url, alert_interval_s=1) as services:
            alerter = Alerter(services)
            running = asyncio.create_task(
                repeat(alerter.run_once, every_s=1, what="alert evaluation", first_now=False)
            )
            try:
                await until(lambda: caplog.records or running.done())
                assert not running.done(), running
                [record] = caplog.records
                assert record.getMessage() == "alert evaluation failed"
                assert record.exc_info is not None  # the traceback is logged
                assert await asyncio.to_thread(_alerts, seed.engine) == []
                await asyncio.to_thread(
                    seed.sql, "ALTER TABLE guardrail_triggers_away RENAME TO guardrail_triggers"
                )
                rows: list[tuple[str, str]] = []

                async def alerted() -> None:
                    rows.extend(await asyncio.to_thread(_alerts, seed.engine))

                deadline = time.monotonic() + 60
                while not rows:
                    assert not running.done(), running
                    assert time.monotonic() < deadline, "no alert after the failed run"
                    await alerted()
                    await asyncio.sleep(0.05)
                assert rows == [("error_rate", "")]
            finally:
                running.cancel()
                await alerter.close()

    with caplog.at_level(logging.ERROR, logger="ragship.background"):
        asyncio.run(go())
