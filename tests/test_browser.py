"""A real browser (Debian's Chromium driven by Playwright) asks a question and sees it stream."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import Engine

from app.guardrails.verdict import RETRACTED_MESSAGE
from app.localmodel.adversary import FAKE_KEY
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from app.rag.embedder import Embedder
from app.settings import Settings
from tests.conftest import LocalModel, eventually, scalar
from tests.oidc_provider import Provider

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, app_server: BackgroundServer) -> Iterator[Page]:
    context = browser.new_context(base_url=app_server.url)
    page = context.new_page()
    dev_sign_in(page, "browser@example.com")
    yield page
    context.close()


def dev_sign_in(page: Page, email: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    page.fill("input[name=email]", email)
    page.click("form[action='/auth/dev-login'] button")
    expect(page.locator("#who")).to_have_text(email)


def ask(page: Page, question: str) -> None:
    page.fill("#question", question)
    page.click("#send")


def test_question_streams_an_answer_with_a_working_citation(page: Page) -> None:
    page.goto("/")
    ask(page, "How do I ingest PDF files?")
    answer = page.locator(".msg.assistant.complete").last
    expect(answer.locator(".body")).to_contain_text(re.compile(r"\[\d+\]"), timeout=20_000)
    expect(answer.locator(".meta")).to_contain_text("tokens")
    # Source n is labelled [n] (counting from 1, as the API numbers them), and every [n] the
    # answer cites is one of them.
    labels = answer.locator(".sources .citation").all_inner_texts()
    numbers = [int(label[1 : label.index("]")]) for label in labels]
    assert numbers == list(range(1, len(labels) + 1)), labels
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer.locator(".body").inner_text())}
    assert cited and cited <= set(numbers), (cited, labels)
    citation = answer.locator("a.citation").first
    expect(citation).to_have_attribute("href", re.compile(r"^/sources/\d+#[a-z0-9-]+$"))
    with page.context.expect_page() as opened:
        citation.click()
    source = opened.value
    source.wait_for_load_state()
    anchor = source.url.split("#")[1]
    expect(source.locator(f"section#{anchor}")).to_be_visible()
    expect(page.locator("#conversations li")).not_to_have_count(0)


def test_markup_in_questions_and_answers_is_shown_as_text(page: Page) -> None:
    page.goto("/")
    ask(page, "<img src=x onerror=\"document.title='pwned'\"> how do I run the tests?")
    expect(page.locator(".msg.assistant.complete")).to_have_count(1, timeout=20_000)
    expect(page.locator(".msg.user .body")).to_contain_text("<img src=x")
    assert page.locator("#messages img").count() == 0
    assert page.title() == "ragship"


def test_too_long_question_shows_the_servers_message(page: Page) -> None:
    page.goto("/")
    ask(page, "x" * 4500)
    expect(page.locator(".msg.assistant .error")).to_contain_text("too long", timeout=20_000)


def test_oidc_sign_in_chat_and_sign_out(
    browser: Browser, prod_app: BackgroundServer, provider: Provider
) -> None:
    """Production settings, the local OIDC provider standing in for Google."""
    provider.next_login(email="ada@example.com", name="Ada")
    context = browser.new_context(base_url=prod_app.url)
    page = context.new_page()
    try:
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/auth/login"))
        assert page.locator("form[action='/auth/dev-login']").count() == 0
        page.click("text=Sign in with Google")
        expect(page.locator("#who")).to_have_text("ada@example.com")
        ask(page, "How do I run the tests?")
        expect(page.locator(".msg.assistant.complete .body")).to_contain_text(
            "make test", timeout=20_000
        )
        page.click("#sign-out")
        expect(page).to_have_url(re.compile(r"/auth/login"))
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/auth/login"))
    finally:
        context.close()


def test_rate_limit_message_and_budget_are_shown(
    browser: Browser, settings: Settings, embedder: Embedder
) -> None:
    # An hour's window: the third question is refused however long the first two take.
    strict = settings.model_copy(update={"rate_limit_requests": 2, "rate_limit_window_s": 3600})
    server = BackgroundServer(create_app(strict, embedder=embedder)).start()
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    try:
        dev_sign_in(page, "strict@example.com")
        expect(page.locator("#budget")).to_contain_text("left (resets 00:00 UTC)")
        for n in range(3):
            ask(page, f"How do I run the tests? {n}")
            expect(page.locator(".msg.assistant.complete")).to_have_count(n + 1, timeout=20_000)
        expect(page.locator(".msg.assistant .error")).to_have_count(1)
        expect(page.locator(".msg.assistant .error")).to_contain_text("2 messages every 60 minutes")
    finally:
        context.close()
        server.stop()


def test_chat_page_shows_a_banner_when_paused(page: Page, settings: Settings) -> None:
    """The kill switch (set by an admin) shows as a banner for every signed-in user."""
    from app.db import make_sync_engine

    engine = make_sync_engine(str(settings.database_url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO app_flags (key, enabled, updated_by, updated_at) "
                "VALUES ('kill_switch', true, 'test', now()) "
                "ON CONFLICT (key) DO UPDATE SET enabled = true"
            )
        page.reload()
        expect(page.locator("#banner")).to_contain_text("paused by the operator")
        expect(page.locator("#banner a")).to_have_attribute("href", "/status")
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE app_flags SET enabled = false WHERE key = 'kill_switch'")
        engine.dispose()


def test_thumbs_down_with_a_comment(page: Page, db_engine: Engine) -> None:
    page.goto("/")
    ask(page, "How do I run the tests?")
    answer = page.locator(".msg.assistant").last
    expect(answer).to_have_class(re.compile("complete"), timeout=60_000)
    expect(answer.locator(".error")).to_have_count(0)
    answer.locator(".thumb.down").click()
    answer.locator(".feedback .comment").fill("Missing the lint step")
    answer.locator(".feedback .comment").blur()  # commits the comment (a change event)
    expect(answer.locator(".feedback")).to_contain_text("Thanks for the feedback.")
    expect(answer.locator(".feedback")).to_have_attribute("data-rating", "down")
    sql = "SELECT count(*) FROM feedback WHERE rating = -1 AND comment = 'Missing the lint step'"
    eventually(lambda: scalar(db_engine, sql) == 1, what="the comment to be stored")


def test_admin_dashboard_shows_the_chats_with_cost_and_latency(
    browser: Browser, settings: Settings, embedder: Embedder
) -> None:
    admin_settings = settings.model_copy(update={"admin_emails": ["boss@example.com"]})
    server = BackgroundServer(create_app(admin_settings, embedder=embedder)).start()
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    try:
        dev_sign_in(page, "boss@example.com")
        ask(page, "How do I run the tests?")
        expect(page.locator(".msg.assistant.complete .meta")).to_contain_text(
            "tokens", timeout=30_000
        )
        expect(page.locator("#admin-link")).to_be_visible()
        page.click("#admin-link")
        expect(page.locator("#calls tbody tr").first).to_contain_text("boss@example.com")
        expect(page.locator("#calls tbody tr").first).to_contain_text("$0.0")
        expect(page.locator("#latency tbody tr")).not_to_have_count(0)
        expect(page.locator("#caps")).to_contain_text("Kill switch: off")
        expect(page.locator("#users tbody")).to_contain_text("boss@example.com")
        page.locator("#calls tbody tr").first.click()
        expect(page.locator("#call-detail")).to_contain_text("trace_id")
    finally:
        context.close()
        server.stop()


# Every text the page ever showed, even for a moment: a guardrail must stop a secret before
# it reaches the DOM, not remove it afterwards.
RECORD_DOM = """
window.__seen = [];
new MutationObserver(() => window.__seen.push(document.body ? document.body.innerText : ""))
  .observe(document, { subtree: true, childList: true, characterData: true });
"""


def _retracted_in_browser(browser: Browser, url: str, email: str, question: str) -> Page:
    context = browser.new_context(base_url=url)
    page = context.new_page()
    page.add_init_script(RECORD_DOM)
    dev_sign_in(page, email)
    page.goto("/")
    ask(page, question)
    answer = page.locator(".msg.assistant.complete").last
    expect(answer.locator(".error")).to_have_text(RETRACTED_MESSAGE, timeout=20_000)
    return page


def test_a_fake_key_never_reaches_the_dom_and_the_retraction_does(
    browser: Browser, app_server: BackgroundServer, local_model: LocalModel
) -> None:
    local_model.fault("adversarial", behaviour="fake_key")
    page = _retracted_in_browser(
        browser, app_server.url, "dom-key@example.com", "How do I ingest PDF files?"
    )
    seen = page.evaluate("window.__seen.join('\\n')")
    assert seen and FAKE_KEY not in seen and "sk-proj" not in seen
    page.context.close()


def test_an_obeyed_planted_instruction_never_reaches_the_dom(
    browser: Browser, planted_app: tuple[BackgroundServer, Engine], local_model: LocalModel
) -> None:
    app, _ = planted_app
    local_model.fault("adversarial", behaviour="planted")
    page = _retracted_in_browser(
        browser, app.url, "dom-planted@example.com", "How do I upgrade to a new release?"
    )
    seen = page.evaluate("window.__seen.join('\\n')")
    assert seen and "upgrade-helper.example" not in seen
    page.context.close()
