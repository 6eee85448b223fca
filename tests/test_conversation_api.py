"""Conversations over real HTTP: rename, delete for good (messages, feedback and logged
text), thumbs state on reopen, one URL per conversation, and only the owner may touch one."""

from __future__ import annotations

import itertools
from decimal import Decimal

import httpx
from sqlalchemy import Engine, text

from app.localmodel.runner import BackgroundServer
from tests.conftest import LocalModel, scalar, sign_in
from tests.sse import chat, parse_lines


def test_rename_and_reopen_with_thumbs_state(client: httpx.Client) -> None:
    events = chat(client, "How do I run the tests?")
    conversation_id = events[0][1]["conversation_id"]
    message_id = events[-1][1]["message_id"]
    assert client.post(f"/api/messages/{message_id}/feedback", json={"rating": "up"}).is_success
    renamed = client.patch(f"/api/conversations/{conversation_id}", json={"title": "  Tests  "})
    assert renamed.json() == {"id": conversation_id, "title": "Tests"}
    titles = {c["id"]: c["title"] for c in client.get("/api/conversations").json()}
    assert titles[conversation_id] == "Tests"
    messages = client.get(f"/api/conversations/{conversation_id}").json()["messages"]
    assert [m["rating"] for m in messages] == [None, "up"]
    for bad in ({"title": "   "}, {"title": "x" * 81}, {}):
        assert client.patch(f"/api/conversations/{conversation_id}", json=bad).status_code == 422
    page = client.get(f"/c/{conversation_id}")
    assert page.status_code == 200 and '<script type="module" src="/static/chat.js">' in page.text


def test_delete_removes_messages_feedback_and_logged_text(
    client: httpx.Client, db_engine: Engine
) -> None:
    events = chat(client, "How do I ingest PDF files?")
    conversation_id = events[0][1]["conversation_id"]
    message_id = events[-1][1]["message_id"]
    client.post(f"/api/messages/{message_id}/feedback", json={"rating": "down", "comment": "no"})
    calls = "SELECT count(*) FROM llm_calls WHERE conversation_id = CAST(:c AS uuid)"
    logged = (
        "SELECT count(*) FROM llm_calls WHERE conversation_id = CAST(:c AS uuid)"
        " AND (question IS NOT NULL OR answer IS NOT NULL)"
    )
    messages = "SELECT count(*) FROM messages WHERE conversation_id = CAST(:c AS uuid)"
    assert scalar(db_engine, logged, c=conversation_id) == 1  # the default policy logs text
    assert client.delete(f"/api/conversations/{conversation_id}").status_code == 204
    assert client.get(f"/api/conversations/{conversation_id}").status_code == 404
    assert conversation_id not in {c["id"] for c in client.get("/api/conversations").json()}
    assert scalar(db_engine, messages, c=conversation_id) == 0
    feedback = "SELECT count(*) FROM feedback WHERE message_id = :m"
    assert scalar(db_engine, feedback, m=message_id) == 0
    # The call record stays for cost accounting, without the question or answer text.
    assert scalar(db_engine, calls, c=conversation_id) == 1
    assert scalar(db_engine, logged, c=conversation_id) == 0
    assert client.delete(f"/api/conversations/{conversation_id}").status_code == 404


def test_only_the_owner_renames_or_deletes(
    client: httpx.Client, app_server: BackgroundServer
) -> None:
    conversation_id = chat(client, "What is ragship?")[0][1]["conversation_id"]
    with sign_in(app_server.url, "mallory@example.com") as stranger:
        path = f"/api/conversations/{conversation_id}"
        assert stranger.patch(path, json={"title": "mine"}).status_code == 404
        assert stranger.delete(path).status_code == 404
    assert client.get(f"/api/conversations/{conversation_id}").status_code == 200
    without_csrf = httpx.delete(
        f"{app_server.url}/api/conversations/{conversation_id}", cookies=client.cookies
    )
    assert without_csrf.status_code == 403


def test_deleting_a_conversation_while_it_answers_still_settles_the_call(
    client: httpx.Client, db_engine: Engine, local_model: LocalModel
) -> None:
    """The answer's settle must not fail on the deleted conversation: the call is charged
    what it used (not the whole reservation by the expiry sweep) and recorded, without
    its text, and no message reappears."""
    local_model.fault("slow", delay_s=2.0)  # the rest of the answer takes seconds
    with client.stream(
        "POST", "/api/chat", json={"message": "How do I ingest PDF files?", "max_tokens": 4}
    ) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        meta = parse_lines([*itertools.takewhile(lambda line: line != "", lines), ""])[0][1]
        conversation_id = meta["conversation_id"]
        assert client.delete(f"/api/conversations/{conversation_id}").status_code == 204
        done = parse_lines(lines)[-1]
    assert done[0] == "done" and done[1]["message_id"] is None  # deleted before it settled
    assert Decimal(done[1]["cost_usd"]) > 0
    row = (
        "SELECT status, cost_usd, reserved_usd, question, answer, r.settled_at IS NOT NULL "
        "FROM llm_calls c JOIN reservations r ON r.id = c.reservation_id "
        "WHERE c.trace_id = :t"
    )
    with db_engine.connect() as conn:
        status, cost, reserved, question, answer, settled = conn.execute(
            text(row), {"t": meta["trace_id"]}
        ).one()
    assert status == "ok" and settled and 0 < cost < reserved
    assert cost == Decimal(done[1]["cost_usd"])
    assert question is None and answer is None
    messages = "SELECT count(*) FROM messages WHERE conversation_id = CAST(:c AS uuid)"
    assert scalar(db_engine, messages, c=conversation_id) == 0
