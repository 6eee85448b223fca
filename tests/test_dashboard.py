"""The admin dashboard reads rollups; they must agree exactly with the raw call ledger."""

from __future__ import annotations

from decimal import Decimal

import httpx
from sqlalchemy import Engine

from app.db import make_sync_engine
from app.localmodel.runner import BackgroundServer
from app.observability.rollups import LATENCY_BUCKETS_MS, one_hot, percentile
from tests.conftest import LocalModel, scalar, sign_in
from tests.sse import chat


def test_rollups_match_the_ledger_and_the_dashboard_shows_every_view(
    start_app, docs_database, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    url = docs_database()
    engine: Engine = make_sync_engine(url)
    app: BackgroundServer = start_app(
        database_url=url,
        admin_emails="ops@example.com",
        rate_limit_requests=4,
        rate_limit_window_s=3600,  # the fifth request is refused however slow the first four
        llm_max_retries=0,
    )
    with sign_in(app.url, "alice@example.com") as alice:
        for _ in range(3):
            assert chat(alice, "How do I run the tests?")[-1][0] == "done"
        local_model.fault("server_error")
        assert chat(alice, "How do I run the tests?")[-1][1]["kind"] == "server_error"
        assert alice.post("/api/chat", json={"message": "one too many"}).status_code == 429
    with sign_in(app.url, "bob@example.com") as bob:
        assert chat(bob, "How do I ingest PDF files?")[-1][0] == "done"
    with sign_in(app.url, "ops@example.com") as ops:
        spend = ops.get("/api/admin/dashboard/spend?days=1").json()
        top = ops.get("/api/admin/dashboard/top-users?days=1").json()
        latency = ops.get("/api/admin/dashboard/latency?days=1").json()
        outcomes = ops.get("/api/admin/dashboard/outcomes?days=1").json()
        caps = ops.get("/api/admin/dashboard/caps").json()
        calls = ops.get("/api/admin/dashboard/calls").json()
        detail = ops.get(f"/api/admin/dashboard/calls/{calls[0]['id']}").json()
        users = {u["email"]: u for u in ops.get("/api/admin/users").json()}
        assert ops.get("/api/admin/dashboard/calls/999999999").status_code == 404
    with sign_in(app.url, "alice@example.com") as alice:
        assert alice.get("/api/admin/dashboard/spend").status_code == 403

    ledger_cost = Decimal(str(scalar(engine, "SELECT sum(cost_usd) FROM llm_calls")))
    assert sum(Decimal(r["cost_usd"]) for r in spend) == ledger_cost > 0
    assert sum(r["calls"] for r in spend) == scalar(engine, "SELECT count(*) FROM llm_calls") == 6
    assert (
        top["by_requests"][0]["email"] == "alice@example.com"
        and top["by_requests"][0]["calls"] == 5
    )
    assert {u["email"] for u in top["by_spend"]} == {"alice@example.com", "bob@example.com"}
    assert sum(r["calls"] for r in latency) == 5  # chat calls that reached the model
    assert latency[-1]["p50_ms"] is not None and latency[-1]["p95_ms"] >= latency[-1]["p50_ms"]
    by_outcome: dict[str, int] = {}
    for bucket in outcomes:
        for name, count in bucket["by_outcome"].items():
            by_outcome[name] = by_outcome.get(name, 0) + count
    assert by_outcome == {"ok": 4, "error:server_error": 1, "refused:rate_limit": 1}
    assert Decimal(caps["global_spent_today_usd"]) == ledger_cost and caps["kill_switch"] is False
    assert calls[0]["admission"] == "allowed" and calls[0]["email"] == "bob@example.com"
    assert detail["trace_id"] == calls[0]["trace_id"] and "reservation_id" in detail
    assert users["alice@example.com"]["requests_30d"] == 5
    assert (
        Decimal(users["alice@example.com"]["spend_30d_usd"])
        + Decimal(users["bob@example.com"]["spend_30d_usd"])
        == ledger_cost
    )
    engine.dispose()


def test_histogram_percentiles() -> None:
    hist = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for value in (10, 20, 30, 40, 120, 130, 140, 150, 160, 2500):
        hist = [a + b for a, b in zip(hist, one_hot(value), strict=True)]
    assert percentile(hist, 0.4) == 50.0  # 4 of 10 in the first bucket (0-50 ms)
    p95 = percentile(hist, 0.95)
    assert p95 is not None and 2000 <= p95 <= 3000
    assert percentile([0] * len(hist), 0.5) is None


def test_metrics_need_an_admin_or_the_scrape_token_and_match_the_ledger(
    start_app, docs_database
) -> None:  # type: ignore[no-untyped-def]
    url = docs_database()
    engine: Engine = make_sync_engine(url)
    app: BackgroundServer = start_app(
        database_url=url,
        admin_emails="ops@example.com",
        metrics_token="scrape-secret-123",
        rate_limit_requests=2,
        rate_limit_window_s=3600,
    )
    with sign_in(app.url, "carol@example.com") as carol:
        for _ in range(2):
            assert chat(carol, "How do I run the tests?")[-1][0] == "done"
        assert carol.post("/api/chat", json={"message": "again"}).status_code == 429
        assert carol.get("/metrics").status_code == 403
    assert (
        httpx.get(
            f"{app.url}/metrics", headers={"Authorization": "Bearer wrong"}, follow_redirects=False
        ).status_code
        == 303
    )
    scraped = httpx.get(f"{app.url}/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    body = scraped.text
    assert (
        'ragship_llm_calls_total{feature="chat",model="ragship-local-1",outcome="ok"} 2.0' in body
    )
    assert 'ragship_cap_refusals_total{layer="rate_limit"} 1.0' in body
    assert 'ragship_llm_latency_seconds_bucket{feature="chat",le="+Inf"} 2.0' in body
    cost = Decimal(str(scalar(engine, "SELECT sum(cost_usd) FROM llm_calls")))
    line = next(x for x in body.splitlines() if x.startswith("ragship_llm_cost_usd_total"))
    assert abs(Decimal(line.split()[-1]) - cost) < Decimal("0.000001")
    with sign_in(app.url, "ops@example.com") as ops:
        assert ops.get("/metrics").status_code == 200
    engine.dispose()
