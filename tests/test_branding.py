"""Make it yours: the bot's name and welcome text are in the pages and in the prompt."""

from __future__ import annotations

import uuid

import httpx

from app.branding import Branding, brand_page
from tests.conftest import LocalModel, sign_in
from tests.sse import chat

BRAND = {
    "bot_name": "Acme Helper",
    "bot_welcome": "Ask me about Acme widgets & gadgets.",
    "bot_examples": "How do I install a widget?|Where are the logs?",
    "contact_text": "Write to help@acme.test.",
    "privacy_text": "Logs are kept for 7 days.",
}


def test_the_pages_carry_the_name_welcome_examples_and_contact(start_app) -> None:  # type: ignore[no-untyped-def]
    app = start_app(**BRAND)
    with sign_in(app.url, "brand@example.com") as client:
        page = client.get("/").text
        # A conversation's own URL serves the same branded page.
        conversation_page = client.get(f"/c/{uuid.uuid4()}").text
    assert conversation_page == page
    assert "<title>Acme Helper</title>" in page
    assert '<span class="brand" data-brand="name">Acme Helper</span>' in page  # top bar
    assert '<p class="brand" data-brand="name">Acme Helper</p>' in page  # sidebar
    assert "Ask me about Acme widgets &amp; gadgets." in page  # escaped
    assert "<li>How do I install a widget?</li><li>Where are the logs?</li>" in page
    assert 'placeholder="Ask Acme Helper…"' in page
    assert "ragship" not in page.replace("/static/", "")
    about = httpx.get(f"{app.url}/about").text
    assert "Write to help@acme.test." in about and "Logs are kept for 7 days." in about
    assert "operator@example.com" not in about and "· Acme Helper</title>" in about
    assert httpx.get(f"{app.url}/api/branding").json()["examples"] == [
        "How do I install a widget?",
        "Where are the logs?",
    ]


def test_the_prompt_persona_is_the_name(start_app, local_model: LocalModel) -> None:  # type: ignore[no-untyped-def]
    echoing = start_app(**BRAND, guardrail_modes="prompt_leak=off")
    local_model.fault("adversarial", behaviour="echo_prompt")
    with sign_in(echoing.url, "persona@example.com") as client:
        events = chat(client, "How do I run the tests?")
    answer = "".join(e[1]["text"] for e in events if e[0] == "token")
    assert "You are Acme Helper's documentation assistant." in answer
    # The prompt-leak check knows the branded prompt: the same echo is retracted.
    guarded = start_app(**BRAND)
    local_model.fault("adversarial", behaviour="echo_prompt")
    with sign_in(guarded.url, "persona2@example.com") as client:
        events = chat(client, "How do I run the tests?")
    assert events[-1][0] == "retract" and events[-1][1]["rule"] == "prompt_leak"


def test_unset_slots_keep_the_page_text() -> None:
    html = '<title>ragship</title><p data-brand="contact">mail <em>x</em></p><ul data-brand="examples"></ul>'
    plain = Branding("ragship", "hi", (), None, None)
    assert brand_page(html, plain) == html
