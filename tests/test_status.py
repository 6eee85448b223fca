"""The status page: probes, the provider's own status, incidents that open and close."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.localmodel.runner import BackgroundServer
from tests.conftest import LocalModel, sign_in
from tests.sse import read_events
from tests.statuspage import create_statuspage


@pytest.fixture
def statuspage() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"indicator": "none"}
    server = BackgroundServer(create_statuspage(state)).start()
    yield f"{server.url}/api/v2/summary.json", state
    server.stop()


def probe(app: BackgroundServer) -> list[dict[str, Any]]:
    with sign_in(app.url, "ops@example.com") as admin:
        response = admin.post("/api/admin/status/probe")
        assert response.status_code == 200, response.text
        return list(response.json())


@pytest.mark.parametrize(
    ("indicator", "incident", "state", "headline"),
    [
        ("none", None, "operational", "Upstream: OpenAI — operational"),
        (
            "minor",
            "Elevated error rates",
            "degraded",
            "Upstream: OpenAI — degraded performance (Elevated error rates)",
        ),
        ("major", "API outage", "down", "Upstream: OpenAI — partial outage (API outage)"),
        (
            "critical",
            "Everything is down",
            "down",
            "Upstream: OpenAI — major outage (Everything is down)",
        ),
    ],
)
def test_provider_state_comes_from_its_statuspage(
    start_app,
    statuspage: tuple[str, dict[str, Any]],
    indicator: str,
    incident: str | None,
    state: str,
    headline: str,  # type: ignore[no-untyped-def]
) -> None:
    url, page_state = statuspage
    page_state.update(indicator=indicator, incident=incident)
    app = start_app(provider_status_url=url, provider_name="OpenAI", admin_emails="ops@example.com")
    probe(app)
    status = httpx.get(f"{app.url}/api/status").json()
    assert status["provider"] == {"name": "OpenAI", "state": state, "headline": headline}
    assert headline in httpx.get(f"{app.url}/status").text


def test_unreachable_statuspage_is_unknown_not_an_outage(
    start_app, statuspage: tuple[str, dict[str, Any]]
) -> None:  # type: ignore[no-untyped-def]
    url, page_state = statuspage
    page_state["broken"] = True
    app = start_app(provider_status_url=url, admin_emails="ops@example.com")
    probe(app)
    status = httpx.get(f"{app.url}/api/status").json()
    assert status["provider"]["state"] == "unknown"
    assert status["overall"] == "operational"


def test_upstream_failing_opens_an_incident_and_recovery_closes_it(
    start_app, local_model: LocalModel
) -> None:  # type: ignore[no-untyped-def]
    """The 'done when' walk-through: the local model fails every request, then recovers."""
    app = start_app(
        admin_emails="ops@example.com",
        llm_max_retries=1,
        # The breaker stays closed, so the probe after recovery reaches the upstream at
        # once (a short cool-down would make that depend on the machine's speed).
        breaker_failures=1000,
    )
    local_model.fault("server_error", times=10_000)
    try:
        with sign_in(app.url, "victim@example.com") as client:
            with client.stream(
                "POST", "/api/chat", json={"message": "How do I run the tests?"}
            ) as response:
                events = read_events(response)
        assert events[-1][0] == "error" and "having problems" in events[-1][1]["message"]
        probe(app)
        status = httpx.get(f"{app.url}/api/status").json()
        llm = next(c for c in status["components"] if c["name"] == "llm_upstream")
        assert llm["state"] == "down" and status["overall"] == "down"
        open_incidents = [i for i in status["incidents"] if i["closed_at"] is None]
        assert [i["component"] for i in open_incidents] == ["llm_upstream"]
        assert httpx.get(f"{app.url}/healthz").status_code == 200
        page = httpx.get(f"{app.url}/status").text
        assert "LLM upstream failing" in page and "ongoing" in page
    finally:
        local_model.clear()
    probe(app)
    status = httpx.get(f"{app.url}/api/status").json()
    llm = next(c for c in status["components"] if c["name"] == "llm_upstream")
    assert llm["state"] == "operational" and status["overall"] == "operational"
    assert all(i["closed_at"] is not None for i in status["incidents"])
    today = llm["uptime_90d"][-1]
    assert 0 < today["uptime"] < 1  # one failed probe, one good one


def test_admin_can_annotate_an_incident(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    app = start_app(admin_emails="ops@example.com", llm_max_retries=0)
    local_model.fault("server_error", times=100)
    try:
        probe(app)
    finally:
        local_model.clear()
    incident = httpx.get(f"{app.url}/api/status").json()["incidents"][0]
    with sign_in(app.url, "ops@example.com") as admin:
        noted = admin.post(
            f"/api/admin/incidents/{incident['id']}/notes", json={"notes": "Provider confirmed."}
        )
        assert noted.json()["notes"] == "Provider confirmed."
    assert "Provider confirmed." in httpx.get(f"{app.url}/status").text


def test_global_pause_shows_on_status(start_app) -> None:  # type: ignore[no-untyped-def]
    app = start_app(admin_emails="ops@example.com")
    with sign_in(app.url, "ops@example.com") as admin:
        admin.post("/api/admin/kill-switch", json={"paused": True})
        try:
            status = httpx.get(f"{app.url}/api/status").json()
            assert (
                status["overall"] == "paused"
                and status["paused_reason"] == "paused by the operator"
            )
        finally:
            admin.post("/api/admin/kill-switch", json={"paused": False})
