"""Thumbs up/down on answers, stored with the call; thumbs-down becomes draft eval cases."""

from __future__ import annotations

import httpx
from sqlalchemy import Engine

from app.localmodel.runner import BackgroundServer
from tests.conftest import scalar, sign_in
from tests.sse import chat


def test_feedback_is_stored_changeable_and_exported_as_draft_cases(
    start_app, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    app: BackgroundServer = start_app(admin_emails="curator@example.com")
    with sign_in(app.url, "rater@example.com") as client:
        events = chat(client, "How do I ingest PDF files?")
        message_id = events[-1][1]["message_id"]
        assert (
            client.post(f"/api/messages/{message_id}/feedback", json={"rating": "up"}).status_code
            == 200
        )
        changed = client.post(
            f"/api/messages/{message_id}/feedback", json={"rating": "down", "comment": "Too vague"}
        )
        assert changed.json() == {"message_id": message_id, "rating": "down"}
        assert (
            client.post(f"/api/messages/{message_id}/feedback", json={"rating": "meh"}).status_code
            == 422
        )
    row = scalar(
        db_engine,
        "SELECT rating || ':' || comment FROM feedback WHERE message_id = :m",
        m=message_id,
    )
    assert row == "-1:Too vague"
    with sign_in(app.url, "stranger@example.com") as stranger:
        assert (
            stranger.post(f"/api/messages/{message_id}/feedback", json={"rating": "up"}).status_code
            == 404
        )
        assert stranger.get("/api/admin/feedback/draft-cases").status_code == 403
    with sign_in(app.url, "curator@example.com") as curator:
        drafts = curator.get("/api/admin/feedback/draft-cases").json()
    draft = next(
        d
        for d in drafts
        if d["id"].startswith("feedback-") and d["notes"]["user_comment"] == "Too vague"
    )
    assert draft["question"] == "How do I ingest PDF files?" and draft["status"] == "draft"
    assert any(s.startswith("docs/") and "#" in s for s in draft["expected_sources"])
    assert draft["notes"]["trace_id"] == events[0][1]["trace_id"]


def test_feedback_requires_sign_in(anonymous: httpx.Client) -> None:
    response = anonymous.post("/api/messages/1/feedback", json={"rating": "up"})
    assert response.status_code == 401
