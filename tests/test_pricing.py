"""Every model the service may call is priced at start, from the maintained database, the
operator's settings or the local table; the reservation covers the dearest model that may
answer; a failed upstream call that produced nothing costs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, text

from app.llm.pricing import GENAI_PRICES_VERSION, UnpricedModel, build_price_book
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from tests.conftest import ROOT, LocalModel, make_settings, scalar, sign_in
from tests.sse import read_events

OPENAI = "https://api.openai.com/v1"
QUESTION = "How do I ingest PDF files?"


def test_hosted_models_are_priced_from_the_maintained_database() -> None:
    book = build_price_book(
        make_settings(
            llm_base_url=OPENAI,
            llm_api_key="sk-test",
            llm_model="gpt-4o-mini",  # an alias, not a pinned id
            llm_fallback_model="gpt-4.1-mini-2025-04-14",
        )
    )
    main, fallback = book["gpt-4o-mini"], book["gpt-4.1-mini-2025-04-14"]
    assert main.source == f"genai-prices {GENAI_PRICES_VERSION} openai/gpt-4o-mini"
    assert fallback.source.endswith("openai/gpt-4.1-mini")
    # OpenAI's published prices: $0.15 / $0.60 and $0.40 / $1.60 per million tokens.
    assert main.cost(input_tokens=1_000_000, output_tokens=0) == Decimal("0.15")
    assert main.cost(input_tokens=0, output_tokens=1_000_000) == Decimal("0.60")
    assert fallback.cost(input_tokens=1_000_000, output_tokens=1_000_000) == Decimal("2.00")
    # Cached input is cheaper, and counted inside input_tokens.
    cached = main.cost(input_tokens=1_000_000, output_tokens=0, cached_input_tokens=1_000_000)
    assert cached == Decimal("0.075")
    assert (main.context_window, fallback.context_window) == (128_000, 1_000_000)


def test_a_model_nobody_prices_stops_the_service_at_start_naming_it() -> None:
    settings = make_settings(
        llm_base_url="http://127.0.0.1:11434/v1",
        llm_model="qwen2.5:7b-instruct",
        llm_fallback_model="my-finetune-3",
    )
    with pytest.raises(UnpricedModel) as raised:
        create_app(settings)
    message = str(raised.value)
    assert "LLM_MODEL=qwen2.5:7b-instruct has no known price" in message
    assert "LLM_PRICE_INPUT_PER_MTOK and LLM_PRICE_OUTPUT_PER_MTOK" in message
    assert "LLM_FALLBACK_MODEL=my-finetune-3 has no known price" in message
    assert "LLM_FALLBACK_PRICE_INPUT_PER_MTOK" in message


def test_the_operator_prices_a_model_in_settings_zero_for_self_hosted() -> None:
    book = build_price_book(
        make_settings(
            llm_base_url="http://127.0.0.1:11434/v1",
            llm_model="qwen2.5:7b-instruct",
            llm_price_input_per_mtok="0",
            llm_price_output_per_mtok="0",
            llm_context_window=32_768,
        )
    )
    price = book["qwen2.5:7b-instruct"]
    assert (price.source, price.context_window) == ("settings", 32_768)
    assert price.cost(input_tokens=5_000, output_tokens=5_000) == 0
    # Settings win over the database too.
    override = build_price_book(
        make_settings(
            llm_base_url=OPENAI,
            llm_api_key="sk-test",
            llm_model="gpt-4o-mini",
            llm_price_input_per_mtok="1",
            llm_price_output_per_mtok="2",
        )
    )["gpt-4o-mini"]
    assert override.source == "settings" and override.context_window == 128_000
    assert override.cost(input_tokens=1_000_000, output_tokens=1_000_000) == Decimal(3)


@pytest.mark.parametrize(
    "values",
    [
        {"llm_price_input_per_mtok": "1"},
        {"llm_fallback_price_output_per_mtok": "1"},
        {"llm_price_input_per_mtok": "-1", "llm_price_output_per_mtok": "1"},
        {"llm_price_input_per_mtok": "NaN", "llm_price_output_per_mtok": "1"},
        {"llm_price_input_per_mtok": "Infinity", "llm_price_output_per_mtok": "1"},
    ],
)
def test_half_a_price_or_a_nonsense_price_is_refused(values: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        make_settings(**values)


def _ask(app: BackgroundServer, email: str) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
    with sign_in(app.url, email) as client:
        with client.stream("POST", "/api/chat", json={"message": QUESTION}) as response:
            if response.status_code != 200:
                response.read()
                return response.status_code, [("refused", response.json())]
            return 200, read_events(response)


# The pair, on the local model: a cheap main model and a dearer fallback.
DEARER_FALLBACK: dict[str, Any] = {
    "llm_fallback_model": "ragship-local-1-mini",
    "llm_price_input_per_mtok": "0.15",
    "llm_price_output_per_mtok": "0.60",
    "llm_fallback_price_input_per_mtok": "0.40",
    "llm_fallback_price_output_per_mtok": "1.60",
    "llm_max_retries": 0,
}


def test_a_cap_the_fallback_could_exceed_is_refused_before_any_upstream_call(
    start_app, local_model: LocalModel, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    # Reserved at the main model's price the call fits $0.0005; the fallback would then
    # charge about twice that. Reserved at the dearest model, it does not fit.
    app = start_app(user_daily_cap_usd="0.0005", **DEARER_FALLBACK)
    local_model.fault("server_error", times=100, model="ragship-local-1")
    before = local_model.stats()["requests"]
    status, events = _ask(app, "fallback-cap@example.com")
    assert status == 429 and events[0][1]["layer"] == "user_daily_cap"
    assert local_model.stats()["requests"] == before
    spent = scalar(
        db_engine,
        "SELECT coalesce(sum(c.cost_usd), 0) FROM llm_calls c JOIN users u ON u.id = c.user_id "
        "WHERE u.email = 'fallback-cap@example.com'",
    )
    assert spent == 0


def test_the_fallback_answer_never_costs_more_than_was_reserved(
    start_app, local_model: LocalModel, db_engine: Engine
) -> None:  # type: ignore[no-untyped-def]
    app = start_app(user_daily_cap_usd="0.05", **DEARER_FALLBACK)
    local_model.fault("server_error", times=100, model="ragship-local-1")
    status, events = _ask(app, "fallback-books@example.com")
    assert status == 200 and events[-1][0] == "done"
    assert events[-1][1]["model"] == "ragship-local-1-mini"
    with db_engine.connect() as conn:
        cost, reserved, source = conn.execute(
            text(
                "SELECT c.cost_usd, c.reserved_usd, c.price_source FROM llm_calls c "
                "JOIN users u ON u.id = c.user_id WHERE u.email = 'fallback-books@example.com' "
                "AND c.admission = 'allowed'"
            )
        ).one()
    assert 0 < cost <= reserved and source == "settings"
    # The reservation is the fallback's worst case, not the cheaper main model's.
    book = build_price_book(make_settings(llm_model="ragship-local-1", **DEARER_FALLBACK))
    assert book["ragship-local-1-mini"].cost(input_tokens=1000, output_tokens=512) > book[
        "ragship-local-1"
    ].cost(input_tokens=1000, output_tokens=512)
    assert cost > book["ragship-local-1"].cost(
        input_tokens=events[-1][1]["usage"]["input_tokens"],
        output_tokens=events[-1][1]["usage"]["output_tokens"],
    )


@pytest.mark.parametrize(
    "fault", [{"kind": "server_error", "times": 1}, {"kind": "connection"}], ids=["503", "refused"]
)
def test_an_upstream_failure_that_produced_nothing_costs_nothing(
    start_app, local_model: LocalModel, db_engine: Engine, fault: dict[str, Any]
) -> None:  # type: ignore[no-untyped-def]
    email = f"nothing-{fault['kind']}@example.com"
    if fault["kind"] == "connection":
        app = start_app(llm_base_url="http://127.0.0.1:1/v1", llm_max_retries=0)
    else:
        app = start_app(llm_max_retries=0)
        local_model.fault("server_error", times=1)
    status, events = _ask(app, email)
    assert status == 200 and events[-1][0] == "error"
    assert events[-1][1]["cost_usd"] == "0.000000"
    with db_engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT c.status, c.input_tokens, c.output_tokens, c.cost_usd FROM llm_calls c "
                "JOIN users u ON u.id = c.user_id WHERE u.email = :email "
                "AND c.admission = 'allowed'"
            ),
            {"email": email},
        ).one()
    assert row[0].startswith("error:") and tuple(row[1:]) == (0, 0, 0)
    spent = scalar(
        db_engine,
        "SELECT s.spent_usd FROM spend_counters s JOIN users u ON s.scope = 'user:' || u.id "
        "WHERE u.email = :email",
        email=email,
    )
    assert spent == 0


def test_python_m_app_refuses_to_start_with_an_unpriced_model(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ENV": "dev",
        "DATA_DIR": str(tmp_path),
        "LLM_BASE_URL": "http://127.0.0.1:11434/v1",
        "LLM_MODEL": "qwen2.5:7b-instruct",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "LLM_MODEL=qwen2.5:7b-instruct has no known price" in done.stderr
    assert "LLM_PRICE_INPUT_PER_MTOK" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "pg").exists()  # refused before starting a database
