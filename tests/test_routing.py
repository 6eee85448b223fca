"""Model routing and the canary over HTTP: a stable share of users answered by the candidate
model or prompt, short first-turn questions answered and charged at the cheap model, every
model priced at start, and the cache never shared between the canary and the main side."""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, text

from app.llm.pricing import UnpricedModel
from app.llm.routing import (
    ARM_CANARY,
    ARM_MAIN,
    ARM_SHORT,
    RoutingError,
    canary_bucket,
    choose_route,
    on_canary,
)
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from app.rag.embedder import Embedder
from app.rag.prompt import system_prompt
from tests.conftest import DOCS, LocalModel, make_settings, sign_in
from tests.corpus_app import corpus_app
from tests.sse import chat

MAIN, CHEAP = "ragship-local-1", "ragship-local-1-mini"
SHORT_Q = "What does DOCS_DIR configure?"  # 7 tokens
LONG_Q = "How do the daily spending caps, the monthly budget and the rate limit work together?"


def _users(n: int) -> list[uuid.UUID]:
    return [uuid.uuid5(uuid.NAMESPACE_URL, f"ragship-user-{i}") for i in range(n)]


@pytest.mark.parametrize("percent", [5.0, 20.0, 50.0])
def test_the_canary_share_is_within_5_points_of_its_setting_over_1000_users(
    percent: float,
) -> None:
    settings = make_settings(llm_canary_model=CHEAP, llm_canary_percent=percent)
    users = _users(1000)
    arms = [choose_route(settings, user_id=u, question=LONG_Q, first_turn=True).arm for u in users]
    share = 100 * arms.count(ARM_CANARY) / len(users)
    assert abs(share - percent) <= 5, f"{share}% of users on the canary, set to {percent}%"
    assert set(arms) == {ARM_MAIN, ARM_CANARY}
    # Each user lands on the same side every time, whatever the question.
    again = [
        choose_route(settings, user_id=u, question=SHORT_Q, first_turn=False).arm for u in users
    ]
    assert again == arms


def test_the_canary_side_is_stable_as_the_share_grows_and_reshuffled_by_the_salt() -> None:
    users = _users(1000)
    # Built once each: validating Settings takes milliseconds, and there are 3,000 checks.
    ten = make_settings(llm_canary_model=CHEAP, llm_canary_percent=10)
    thirty = make_settings(llm_canary_model=CHEAP, llm_canary_percent=30)
    ten_salted = make_settings(llm_canary_model=CHEAP, llm_canary_percent=10, llm_canary_salt="x")
    small = {u for u in users if on_canary(ten, u)}
    large = {u for u in users if on_canary(thirty, u)}
    assert small < large  # raising the share only adds users: nobody flips back
    assert all(0 <= canary_bucket(u, "s") < 10_000 for u in users)
    salted = {u for u in users if on_canary(ten_salted, u)}
    assert salted != small


def _user_id(engine: Engine, email: str) -> uuid.UUID:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM users WHERE email = :e"), {"e": email}).one()
    return uuid.UUID(str(found.id))


def _call(engine: Engine, trace_id: object) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT arm, model, prompt_version, cost_usd, reserved_usd, input_tokens, "
                "output_tokens, cache_hit FROM llm_calls WHERE trace_id = :t AND feature = 'chat'"
            ),
            {"t": str(trace_id)},
        ).one()
    return dict(row._mapping)


def test_a_canary_users_calls_show_the_canary_model_every_time(
    start_app: Callable[..., BackgroundServer],
    db_engine: Engine,
    local_model: LocalModel,
) -> None:
    settings = {"llm_canary_model": CHEAP, "llm_canary_percent": 50.0}
    server = start_app(**settings)
    sides: dict[bool, int] = {True: 0, False: 0}
    for i in range(40):  # until each side has two users (2^-38 odds of running out)
        if min(sides.values()) >= 2:
            break
        email = f"canary-{i}@example.com"
        with sign_in(server.url, email) as client:
            canary = on_canary(make_settings(**settings), _user_id(db_engine, email))
            for question in (LONG_Q, SHORT_Q, LONG_Q):
                events = chat(client, question)
                assert events[-1][0] == "done"
                assert local_model.stats()["last_model"] == (CHEAP if canary else MAIN)
                call = _call(db_engine, events[0][1]["trace_id"])
                assert call["arm"] == (ARM_CANARY if canary else ARM_MAIN)
                assert call["model"] == events[-1][1]["model"] == (CHEAP if canary else MAIN)
        sides[canary] += 1
    assert min(sides.values()) >= 2, sides


def test_a_canary_prompt_version_reaches_the_model_and_the_call_row(
    start_app: Callable[..., BackgroundServer],
    db_engine: Engine,
    local_model: LocalModel,
) -> None:
    settings = {"llm_canary_prompt_version": "answer-v1", "llm_canary_percent": 100.0}
    server = start_app(**settings)
    with sign_in(server.url, "prompt-canary@example.com") as client:
        events = chat(client, LONG_Q)
    assert events[0][1]["prompt_version"] == "answer-v1"
    sent = local_model.stats()["last_messages"]
    assert isinstance(sent, list) and sent[0]["content"] == system_prompt("answer-v1")
    call = _call(db_engine, events[0][1]["trace_id"])
    assert (call["arm"], call["model"], call["prompt_version"]) == (ARM_CANARY, MAIN, "answer-v1")


def test_a_short_question_goes_to_the_cheap_model_and_is_reserved_and_charged_at_its_price(
    start_app: Callable[..., BackgroundServer],
    db_engine: Engine,
    local_model: LocalModel,
) -> None:
    # The main model priced dear, the short route's at the built-in mini's table price.
    server = start_app(
        llm_price_input_per_mtok="10",
        llm_price_output_per_mtok="30",
        llm_route_short_model=CHEAP,
        llm_route_short_max_tokens=12,
    )
    max_tokens = 512  # LLM_MAX_TOKENS
    with sign_in(server.url, "router@example.com") as client:
        short = chat(client, SHORT_Q)
        assert local_model.stats()["last_model"] == CHEAP
        long = chat(client, LONG_Q)
        assert local_model.stats()["last_model"] == MAIN
        follow_up = chat(client, SHORT_Q, conversation_id=short[0][1]["conversation_id"])
        assert local_model.stats()["last_model"] == MAIN  # follow-ups need the main model
    routed = _call(db_engine, short[0][1]["trace_id"])
    assert (routed["arm"], routed["model"]) == (ARM_SHORT, CHEAP)
    # Charged at the mini's $0.10 / $0.40 per million tokens.
    expected = (
        Decimal(routed["input_tokens"]) * Decimal("0.10")
        + Decimal(routed["output_tokens"]) * Decimal("0.40")
    ) / 1_000_000
    assert routed["cost_usd"] == expected.quantize(Decimal("0.000001"), rounding="ROUND_UP")
    assert routed["cost_usd"] > 0
    # Reserved at the mini's price too: at least its every output token, less than the
    # main model's output tokens alone would need.
    assert max_tokens * Decimal("0.40") / 1_000_000 <= routed["reserved_usd"]
    assert routed["reserved_usd"] < max_tokens * Decimal(30) / 1_000_000
    for events, arm in ((long, ARM_MAIN), (follow_up, ARM_MAIN)):
        call = _call(db_engine, events[0][1]["trace_id"])
        assert (call["arm"], call["model"]) == (arm, MAIN)
        assert call["reserved_usd"] >= max_tokens * Decimal(30) / 1_000_000


def test_an_unpriced_canary_or_routed_model_stops_the_start() -> None:
    base = {"llm_base_url": "http://127.0.0.1:11434/v1", "llm_model": MAIN}
    with pytest.raises(UnpricedModel) as raised:
        create_app(make_settings(**base, llm_canary_model="cand-7b", llm_canary_percent=5))
    assert "LLM_CANARY_MODEL=cand-7b has no known price" in str(raised.value)
    assert "LLM_CANARY_PRICE_INPUT_PER_MTOK" in str(raised.value)
    with pytest.raises(UnpricedModel) as raised:
        create_app(make_settings(**base, llm_route_short_model="tiny-1b"))
    assert "LLM_ROUTE_SHORT_MODEL=tiny-1b has no known price" in str(raised.value)
    # Priced in settings, both start.
    create_app(
        make_settings(
            **base,
            llm_canary_model="cand-7b",
            llm_canary_percent=5,
            llm_canary_price_input_per_mtok="0",
            llm_canary_price_output_per_mtok="0",
        )
    )


def test_a_canary_with_a_missing_prompt_or_that_changes_nothing_stops_the_start() -> None:
    with pytest.raises(RoutingError, match="no prompt file"):
        create_app(make_settings(llm_canary_prompt_version="answer-v9", llm_canary_percent=5))
    with pytest.raises(RoutingError, match="changes nothing"):
        create_app(make_settings(llm_canary_model=MAIN, llm_canary_percent=5))


@pytest.fixture(scope="module")
def canary_cache_app(
    new_database: Callable[[], str], embedder: Embedder, local_model: LocalModel
) -> Iterator[tuple[BackgroundServer, Engine]]:
    """The response cache on; the canary and the short route use the same model and
    prompt, so only the arm keeps their cached answers apart."""
    pages = [DOCS / "getting-started.md", DOCS / "configuration.md"]
    with corpus_app(
        new_database(),
        embedder,
        local_model,
        pages,
        response_cache=True,
        llm_route_short_model=CHEAP,
        llm_canary_model=CHEAP,
        llm_canary_percent=50.0,
        admin_emails="ops@example.com",
    ) as app:
        yield app


def test_a_canary_answer_is_never_served_from_the_cache_to_the_main_side(
    canary_cache_app: tuple[BackgroundServer, Engine], local_model: LocalModel
) -> None:
    server, engine = canary_cache_app
    settings = make_settings(llm_canary_model=CHEAP, llm_canary_percent=50.0)
    by_side: dict[bool, list[str]] = {True: [], False: []}
    for i in range(60):
        email = f"cache-side-{i}@example.com"
        with sign_in(server.url, email):
            pass
        by_side[on_canary(settings, _user_id(engine, email))].append(email)
        if min(len(v) for v in by_side.values()) >= 2:
            break
    (main_a, main_b), (canary_a, canary_b) = by_side[False][:2], by_side[True][:2]

    def ask(email: str) -> tuple[dict[str, Any], int]:
        with sign_in(server.url, email) as client:
            before = local_model.stats()["requests"]
            events = chat(client, SHORT_Q)
            after = local_model.stats()["requests"]
        assert isinstance(before, int) and isinstance(after, int)
        return _call(engine, events[0][1]["trace_id"]), after - before

    first, upstream = ask(main_a)
    assert (first["arm"], first["model"], upstream, first["cache_hit"]) == (
        ARM_SHORT,
        CHEAP,
        1,
        False,
    )
    # Same question, same model, same prompt: but the canary side, so not a hit.
    canary, upstream = ask(canary_a)
    assert (canary["arm"], canary["model"], upstream, canary["cache_hit"]) == (
        ARM_CANARY,
        CHEAP,
        1,
        False,
    )
    # Each side is then served its own cached answer.
    for email, arm in ((canary_b, ARM_CANARY), (main_b, ARM_SHORT)):
        hit, upstream = ask(email)
        assert (hit["arm"], upstream, hit["cache_hit"]) == (arm, 0, True)


def test_the_dashboard_compares_arms_and_models_side_by_side(
    canary_cache_app: tuple[BackgroundServer, Engine], local_model: LocalModel
) -> None:
    """Answers of every kind on the main arm of a database of its own (a live one, one
    thumbed down, an upstream error, a local "I don't know"), then the table against
    figures computed here from the ledger."""
    server, engine = canary_cache_app
    settings = make_settings(llm_canary_model=CHEAP, llm_canary_percent=50.0)
    emails = [f"board-{i}@example.com" for i in range(60)]
    email = next(e for e in emails if _signed_in_on_main(server, engine, e, settings))
    on_the_canary = next(e for e in emails if not _signed_in_on_main(server, engine, e, settings))
    with sign_in(server.url, on_the_canary) as client:
        assert chat(client, LONG_Q + " Answer for the canary.")[-1][0] == "done"
    with sign_in(server.url, email) as client:
        liked = chat(client, LONG_Q)
        disliked = chat(client, LONG_Q + " Please be brief.")
        down = client.post(
            f"/api/messages/{disliked[-1][1]['message_id']}/feedback", json={"rating": "down"}
        )
        assert down.status_code == 200
        local_model.fault("server_error", times=3)  # the first try and both retries
        # A follow-up: never served from the cache, so it reaches the failing upstream.
        failed = chat(client, LONG_Q, conversation_id=liked[0][1]["conversation_id"])
        assert failed[-1][0] == "error"
        unknown = chat(client, "Who painted the Mona Lisa in Florence?")
        assert unknown[-1][0] == "done"
    assert liked[-1][0] == "done"
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT coalesce(c.arm, 'main') AS arm, c.model, c.status, c.cost_usd, "
                "c.ttft_ms, c.latency_ms, c.cache_hit, m.content, "
                "EXISTS (SELECT 1 FROM feedback f WHERE f.message_id = m.id AND f.rating < 0) "
                "AS down FROM llm_calls c LEFT JOIN messages m "
                "ON m.trace_id = c.trace_id AND m.role = 'assistant' "
                "WHERE c.feature = 'chat' AND c.admission = 'allowed'"
            )
        ).all()
    with sign_in(server.url, "ops@example.com") as ops:
        table = ops.get("/api/admin/dashboard/models?days=1").json()
        assert ops.get("/api/admin/dashboard/models?days=1").status_code == 200
    with sign_in(server.url, email) as client:
        assert client.get("/api/admin/dashboard/models").status_code == 403
    arms = {(r["arm"], r["model"]) for r in table}
    assert (ARM_MAIN, MAIN) in arms and (ARM_SHORT, CHEAP) in arms and (ARM_CANARY, CHEAP) in arms
    for shown in table:
        mine = [r for r in rows if (r.arm, r.model) == (shown["arm"], shown["model"])]
        live = [r for r in mine if not r.cache_hit and r.status != "no_context"]
        n = len(mine)
        assert shown["answers"] == n
        assert Decimal(shown["cost_usd"]) == sum(Decimal(r.cost_usd) for r in mine)
        assert shown["error_rate"] == sum(r.status.startswith("error:") for r in mine) / n
        assert shown["thumbs_down_rate"] == sum(bool(r.down) for r in mine) / n
        dont_know = sum(
            r.status in ("no_context", "refused") or "i don't know" in (r.content or "").lower()
            for r in mine
        )
        assert shown["dont_know_rate"] == dont_know / n
        for key, values in (
            ("ttft_p50_ms", [float(r.ttft_ms) for r in live if r.ttft_ms is not None]),
            ("latency_p50_ms", [float(r.latency_ms) for r in live if r.latency_ms is not None]),
        ):
            median = statistics.median(values) if values else None
            assert shown[key] == (None if median is None else pytest.approx(median, abs=0.06))
    main = next(r for r in table if (r["arm"], r["model"]) == (ARM_MAIN, MAIN))
    assert main["thumbs_down"] == 1 and main["error_rate"] > 0
    assert Decimal(main["cost_per_answer_usd"]) > 0
    short = next(r for r in table if r["arm"] == ARM_SHORT)
    assert short["dont_know_rate"] > 0  # the Mona Lisa: nothing retrieved, answered locally


def _signed_in_on_main(server: BackgroundServer, engine: Engine, email: str, settings: Any) -> bool:
    with sign_in(server.url, email):
        pass
    return not on_canary(settings, _user_id(engine, email))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"llm_canary_percent": 10}, "needs LLM_CANARY_MODEL or LLM_CANARY_PROMPT_VERSION"),
        ({"llm_canary_percent": 101, "llm_canary_model": CHEAP}, "less than or equal to 100"),
        ({"llm_canary_price_input_per_mtok": "1"}, "LLM_CANARY_PRICE_OUTPUT_PER_MTOK"),
        ({"llm_route_short_price_output_per_mtok": "1"}, "LLM_ROUTE_SHORT_PRICE_INPUT_PER_MTOK"),
    ],
)
def test_routing_settings_that_cannot_work_are_refused(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        make_settings(**values)
