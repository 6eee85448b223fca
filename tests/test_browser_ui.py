"""The chat page as people use it: phone and desktop layouts, dark mode, Markdown answers
(safe, highlighted, copyable), hostile answers and documents that run and load nothing, conversations
with their own URL (reload, back and forward, thumbs kept, rename, delete), Esc to stop."""
# ruff: noqa: F811  (the browser and page fixtures are imported from tests/browser.py)

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine, text

from app.localmodel.runner import BackgroundServer
from app.models import EMBEDDING_DIM
from tests.browser import DESKTOP, PHONE, ask, browser, dev_sign_in, page, watch_errors  # noqa: F401
from tests.conftest import LocalModel

NO_OVERFLOW = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
BACKGROUND = "getComputedStyle(document.body).backgroundColor"

MARKDOWN_ANSWER = """Three steps [1]:

1. Install the tools
2. Run **the tests**
3. Read the report

```python
def greet(name):
    return f"hello {name}"
```

| Command | What it does |
|---|---|
| `make test` | runs the tests |
| `make lint` | checks the style |
"""

# What a confused model or a poisoned document might say. None of these is on the output
# guardrail's list, so they reach the browser, whose sanitizer alone must make them inert.
HOSTILE_ANSWER = """Here you go [1].

![tracker](https://tracker.example/pixel.png)

<img src="https://tracker.example/raw.png">

<details open ontoggle="window.__pwned = 1">toggle</details>

[encoded](java&#115;cript:window.__pwned=2) and [data](data:text/html,<b>x</b>)

[the docs](https://example.org/docs) and [about](/about)
"""


def _luminance(css_colour: str) -> float:
    red, green, blue = (int(v) for v in re.findall(r"\d+", css_colour)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def test_phone_and_desktop_layouts_and_dark_mode(
    browser: Browser, app_server: BackgroundServer
) -> None:
    for viewport, scheme in ((PHONE, "light"), ({"width": 320, "height": 640}, "dark")):
        context = browser.new_context(
            base_url=app_server.url,
            viewport=viewport,
            color_scheme=scheme,  # type: ignore[arg-type]
        )
        phone = context.new_page()
        errors = watch_errors(phone)
        dev_sign_in(phone, f"phone-{scheme}@example.com")
        expect(phone.locator("#menu")).to_be_visible()
        expect(phone.locator("#sidebar")).to_be_hidden()
        width = phone.locator("#question").bounding_box()["width"]  # type: ignore[index]
        assert width >= 0.8 * viewport["width"], width
        assert phone.evaluate(NO_OVERFLOW)
        phone.click("#menu")
        expect(phone.locator("#sidebar")).to_be_visible()
        expect(phone.locator("#menu")).to_have_attribute("aria-expanded", "true")
        phone.keyboard.press("Escape")
        expect(phone.locator("#sidebar")).to_be_hidden()
        dark = _luminance(phone.evaluate(BACKGROUND)) < 0.3
        assert dark == (scheme == "dark")
        assert errors == []
        context.close()
    context = browser.new_context(base_url=app_server.url, viewport=DESKTOP)
    desktop = context.new_page()
    dev_sign_in(desktop, "desktop@example.com")
    expect(desktop.locator("#menu")).to_be_hidden()
    expect(desktop.locator("#sidebar")).to_be_visible()
    assert desktop.evaluate(NO_OVERFLOW)
    assert _luminance(desktop.evaluate(BACKGROUND)) > 0.7
    context.close()


def test_markdown_answer_renders_with_highlighted_copyable_code(
    page: Page, local_model: LocalModel
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    local_model.fault("scripted", text=MARKDOWN_ANSWER)
    page.goto("/")
    ask(page, "How do I run the tests?")
    body = page.locator(".msg.assistant.complete .body")
    expect(body.locator("ol > li")).to_have_count(3, timeout=20_000)
    expect(body.locator("li strong")).to_have_text("the tests")
    expect(body.locator("table tr")).to_have_count(3)
    expect(body.locator("table td code").first).to_have_text("make test")
    expect(body.locator("pre code.hljs .hljs-keyword").first).to_have_text("def")
    expect(body.locator("a.citation")).to_have_text("[1]")
    assert "```" not in body.inner_text() and "|---|" not in body.inner_text()
    page.click(".copy-code")
    expect(page.locator(".copy-code")).to_contain_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("def greet(name):") and 'return f"hello {name}"' in copied
    page.set_viewport_size(PHONE)  # a wide table or code block scrolls on its own
    assert page.evaluate(NO_OVERFLOW)


def test_hostile_answer_runs_nothing_and_loads_nothing(page: Page, local_model: LocalModel) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    local_model.fault("scripted", text=HOSTILE_ANSWER)
    page.goto("/")
    ask(page, "How do I run the tests?")
    body = page.locator(".msg.assistant.complete .body")
    expect(body.locator("a", has_text="the docs")).to_have_attribute(
        "href", "https://example.org/docs", timeout=20_000
    )
    expect(body.locator("a", has_text="the docs")).to_have_attribute("rel", re.compile("noopener"))
    expect(body.locator("a", has_text="about")).to_have_attribute("href", "/about")
    for name in ("encoded", "data"):
        assert body.locator("a", has_text=name).get_attribute("href") is None
    assert body.locator("img[src]").count() == 0
    assert body.locator("details").count() == 0  # raw HTML is shown as text
    expect(body).to_contain_text("ontoggle")
    body.locator("a", has_text="encoded").click()
    assert page.evaluate("window.__pwned") is None
    assert not [url for url in requested if "tracker.example" in url or "example.org" in url]


def test_conversation_url_reload_history_thumbs_rename_and_delete(page: Page) -> None:
    page.goto("/")
    ask(page, "How do I run the tests?")
    expect(page.locator(".msg.assistant.complete")).to_have_count(1, timeout=20_000)
    expect(page).to_have_url(re.compile(r"/c/[0-9a-f-]{36}$"))
    url = page.url
    conversation_id = url.rsplit("/", 1)[1]
    expect(page.locator("#question")).to_be_focused()
    page.get_by_role("button", name="Good answer").click()
    expect(page.get_by_role("button", name="Good answer")).to_have_attribute("aria-pressed", "true")

    page.reload()
    expect(page.locator(".msg.user .body")).to_have_text("How do I run the tests?")
    expect(page.get_by_role("button", name="Good answer")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#conversations a[aria-current=page]")).to_have_count(1)

    page.click("#new-chat")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator(".msg")).to_have_count(0)
    page.go_back()
    expect(page).to_have_url(url)
    expect(page.locator(".msg.assistant")).to_have_count(1)
    page.go_forward()
    expect(page.locator(".msg")).to_have_count(0)
    page.go_back()

    item = page.locator("#conversations li").filter(
        has=page.locator(f"a[href='/c/{conversation_id}']")
    )
    item.get_by_role("button", name=re.compile("^Rename")).click()
    page.get_by_label("Conversation title").fill("Running the tests")
    page.keyboard.press("Enter")
    expect(page.locator(f"#conversations a[href='/c/{conversation_id}']")).to_have_text(
        "Running the tests"
    )

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name='Delete "Running the tests"').click()
    expect(page.locator(f"#conversations a[href='/c/{conversation_id}']")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/$"))
    assert page.request.get(f"/api/conversations/{conversation_id}").status == 404
    page.goto(url)
    expect(page.locator(".hint")).to_contain_text("does not exist")


def test_escape_stops_a_stream_and_the_answer_stays_marked_stopped(
    page: Page, local_model: LocalModel
) -> None:
    local_model.fault("slow", delay_s=0.5)
    page.goto("/")
    ask(page, "How do I ingest PDF files?")
    answer = page.locator(".msg.assistant").last
    expect(answer.locator(".body")).not_to_be_empty(timeout=20_000)
    page.keyboard.press("Escape")
    expect(answer.locator(".notice")).to_have_text("Stopped: this answer is incomplete.")
    expect(page.locator("#question")).to_be_focused()
    expect(page).to_have_url(re.compile(r"/c/"))
    expect(page.locator("#stop")).to_be_hidden()
    page.reload()  # the server recorded it as stopped: reopened, it says so
    expect(page.locator(".msg.assistant .notice")).to_have_text(
        "Stopped: this answer is incomplete.", timeout=20_000
    )


HOSTILE_DOCUMENT = """Setup notes with **bold** text.

<script>window.__pwned = 1</script>

<img src="x" onerror="window.__pwned = 2">

[click me](javascript:window.__pwned=3)

![tracker](https://tracker.example/doc.png)
"""


def test_a_hostile_document_renders_safely_in_the_source_view(
    page: Page, db_engine: Engine
) -> None:
    """A poisoned document in the corpus: its Markdown renders, its markup stays inert."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    with db_engine.begin() as conn:
        document_id = conn.execute(
            text(
                "INSERT INTO documents (source, title, content_hash, embedding_model, chunk_count,"
                " ingested_at) VALUES ('hostile/notes.md', 'Hostile notes', 'x', 'test', 1, now())"
                " RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO chunks (document_id, ordinal, heading_path, anchor, text,"
                " token_count, embedding) VALUES (:d, 0, 'Hostile notes', 'notes', :t, 10,"
                " array_fill(0.01, ARRAY[:dim])::vector)"
            ),
            {"d": document_id, "t": HOSTILE_DOCUMENT, "dim": EMBEDDING_DIM},
        )
    try:
        page.goto(f"/sources/{document_id}#notes")
        passage = page.locator("section#notes .passage")
        expect(passage.locator("strong")).to_have_text("bold")
        expect(page.locator("h1")).to_have_text("Hostile notes")
        assert passage.locator("script, img[src]").count() == 0
        assert passage.locator("a", has_text="click me").get_attribute("href") is None
        expect(passage).to_contain_text("<script>")  # shown as text
        assert page.evaluate("window.__pwned") is None
        assert not [url for url in requested if "tracker.example" in url]
        assert "hostile/notes.md" not in page.locator("body").inner_text()
    finally:
        with db_engine.begin() as conn:
            conn.execute(text("DELETE FROM documents WHERE id = :d"), {"d": document_id})
