"""A real browser (Debian's Chromium driven by Playwright) asks a question and sees it stream."""
# ruff: noqa: F811  (the browser and page fixtures are imported from tests/browser.py)

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine

from app.guardrails.verdict import RETRACTED_MESSAGE
from app.localmodel.adversary import FAKE_KEY
from app.localmodel.runner import BackgroundServer
from app.main import create_app
from app.rag.embedder import Embedder
from app.settings import Settings
from tests.browser import ask, browser, dev_sign_in, page  # noqa: F401
from tests.conftest import LocalModel, eventually, scalar
from tests.oidc_provider import Provider


def test_answer_cites_inline_with_a_preview_and_lists_only_cited_sources(
    page: Page, db_engine: Engine
) -> None:
    page.goto("/")
    ask(page, "How do I ingest PDF files?")
    answer = page.locator(".msg.assistant.complete").last
    citation = answer.locator(".body a.citation").first
    expect(citation).to_have_attribute(
        "href", re.compile(r"^/sources/\d+#[a-z0-9-]+$"), timeout=20_000
    )
    expect(answer.locator(".meta")).to_have_count(0)  # tokens, cost, trace: admins only
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer.locator(".body").inner_text())}
    listed = answer.locator(".sources li")
    expect(listed).to_have_count(len(cited))
    assert {int(v) for v in listed.evaluate_all("items => items.map(i => i.value)")} == cited
    preview = answer.locator(".cite-preview").first
    expect(preview).to_be_hidden()
    citation.focus()
    expect(preview).to_be_visible()
    expect(preview).not_to_be_empty()
    with page.context.expect_page() as opened:
        citation.click()
    source = opened.value
    source.wait_for_load_state()
    anchor = source.url.split("#")[1]
    section = source.locator(f"section#{anchor}")
    expect(section).to_be_visible()
    expect(section).to_be_in_viewport()
    highlighted = section.evaluate("s => getComputedStyle(s).backgroundColor")
    plain = source.locator("section").evaluate_all(
        "all => all.filter(s => !s.matches(':target')).map(s => getComputedStyle(s).backgroundColor)"
    )
    assert plain and highlighted not in plain, "the cited passage is highlighted"
    assert source.title() != "about:blank" and source.locator("h1").inner_text()
    document_id = int(source.url.split("/sources/")[1].split("#")[0])
    path = scalar(db_engine, "SELECT source FROM documents WHERE id = :id", id=document_id)
    assert str(path) not in source.locator("body").inner_text()  # no server file path
    expect(page.locator("#conversations li")).not_to_have_count(0)


def test_markup_in_questions_is_shown_as_text(page: Page) -> None:
    page.goto("/")
    ask(page, "<img src=x onerror=\"document.title='pwned'\"> how do I run the tests?")
    expect(page.locator(".msg.assistant.complete")).to_have_count(1, timeout=20_000)
    expect(page.locator(".msg.user .body")).to_contain_text("<img src=x")
    assert page.locator("#messages img").count() == 0
    assert page.title() == "ragship"


def test_over_long_question_shows_a_counter_and_cannot_be_sent(page: Page) -> None:
    page.goto("/")
    expect(page.locator("#counter")).to_be_hidden()
    page.fill("#question", "x" * 3500)  # 80% of the 4000-character limit shows the counter
    expect(page.locator("#counter")).to_have_text("3500 / 4000")
    expect(page.locator("#send")).to_be_enabled()
    page.fill("#question", "x" * 4500)
    expect(page.locator("#counter")).to_have_text("4500 / 4000")
    expect(page.locator("#counter")).to_have_class(re.compile("over"))
    expect(page.locator("#send")).to_be_disabled()
    page.press("#question", "Enter")
    expect(page.locator(".msg")).to_have_count(0)


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
        # The refused question stays in the box, Send waits for a live countdown.
        expect(page.locator("#question")).to_have_value("How do I run the tests? 2")
        expect(page.locator(".msg.user")).to_have_count(2)
        expect(page.locator("#send")).to_be_disabled()
        wait = page.locator("#wait")
        expect(wait).to_have_text(re.compile(r"You can send again in \d+m \d+s\."))
        first = wait.inner_text()
        expect(wait).not_to_have_text(first, timeout=5_000)  # it counts down
        expect(page.locator("#question")).to_be_focused()
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
    down = answer.get_by_role("button", name="Bad answer")
    expect(down).to_have_attribute("aria-pressed", "false")
    sql = "SELECT count(*) FROM feedback WHERE rating = -1"
    before = scalar(db_engine, sql)
    down.click()
    form = answer.locator(".feedback-form")
    expect(form.get_by_label("What went wrong?")).to_be_focused()
    assert scalar(db_engine, sql) == before  # nothing is recorded before Send
    form.get_by_label("What went wrong?").select_option("Did not answer the question")
    form.get_by_label("Comment (optional)").fill("Missing the lint step")
    form.get_by_role("button", name="Send").click()
    expect(answer.locator(".feedback")).to_contain_text("Thanks for the feedback.")
    expect(down).to_have_attribute("aria-pressed", "true")
    expect(answer.get_by_role("button", name="Good answer")).to_have_attribute(
        "aria-pressed", "false"
    )
    stored = "Did not answer the question: Missing the lint step"
    eventually(
        lambda: scalar(db_engine, sql + " AND comment = :c", c=stored) == 1,
        what="the comment to be stored",
    )


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
        answer = page.locator(".msg.assistant.complete").last
        answer.get_by_role("button", name="Bad answer").click()
        answer.get_by_label("Comment (optional)").fill("Too vague")
        answer.get_by_role("button", name="Send").click()
        expect(answer.locator(".thanks")).to_have_text("Thanks for the feedback.")
        expect(page.locator("#admin-link")).to_be_visible()
        page.click("#admin-link")
        for chart in ("spend", "latency", "outcomes"):
            expect(page.locator(f"#{chart}-chart canvas")).to_have_count(1)
        expect(page.locator("#outcomes-chart .u-legend")).to_contain_text("Error rate")
        expect(page.locator("#thumbs-down tbody")).to_contain_text("Too vague")
        expect(page.locator("#thumbs-down tbody")).to_contain_text("How do I run the tests?")
        expect(page.locator("#calls tbody tr").first).to_contain_text("boss@example.com")
        expect(page.locator("#calls tbody tr").first).to_contain_text("$0.0")
        expect(page.locator("#latency tbody tr")).not_to_have_count(0)
        main_arm = page.locator("#models tbody tr", has_text="ragship-local-1")
        expect(main_arm.first).to_contain_text("main")  # models and arms side by side
        expect(page.locator("#caps")).to_contain_text("Kill switch: off")
        expect(page.locator("#quality-note")).to_contain_text(
            "0.0% of live answers are scored by ragship-local-1"
        )
        # Nothing scored yet: the chart says so rather than leaving an empty box.
        expect(page.locator("#quality-chart")).to_have_text("No data in this range.")
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
