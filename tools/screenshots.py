"""Take the screenshots in docs/images/ from a real app in real Chromium.

    .venv/bin/python -m tools.screenshots

Starts what the tests start (an embedded PostgreSQL from pgserver in a temporary folder,
the bundled docs ingested, the built-in local model, the app), signs in with dev sign-in
as an admin, asks questions and saves: chat on a desktop and a phone, light and dark, an
answer with code, a table and citations, and the admin dashboard. The code answer is a
`scripted` answer of the local model (docs/local-model.md); the others are its own.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pgserver
from playwright.sync_api import Page, expect, sync_playwright

from app.db import make_sync_engine
from app.localmodel.runner import BackgroundServer
from app.localmodel.server import create_local_model
from app.main import create_app
from app.migrate import upgrade_to_head
from app.rag.embedder import Embedder
from app.settings import Settings
from ingest.pipeline import ingest_paths

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CODE_ANSWER = """To run the tests and the linters [1]:

```bash
make test
.venv/bin/ruff check . && .venv/bin/mypy
```

| Command | What it does |
|---|---|
| `make test` | the whole suite, browser tests included |
| `make lint` | ruff and mypy |

The first run downloads nothing: the model and the database come from the installed wheels [2].
"""


def _ask(page: Page, question: str) -> None:
    page.fill("#question", question)
    page.click("#send")
    expect(page.locator(".msg.assistant.complete").last.locator(".feedback")).to_be_visible(
        timeout=60_000
    )


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pg = pgserver.get_server(Path(tmp), cleanup_mode="delete")
        url = pg.get_uri("postgres").replace("postgresql://", "postgresql+psycopg://", 1)
        upgrade_to_head(url)
        embedder = Embedder()
        engine = make_sync_engine(url)
        ingest_paths(
            [ROOT / "docs"], engine=engine, embedder=embedder, chunk_tokens=300, chunk_overlap=40
        )
        engine.dispose()
        model = BackgroundServer(create_local_model()).start()
        settings = Settings(
            _env_file=None,
            env="dev",
            database_url=url,
            llm_base_url=f"{model.url}/v1",
            local_model_token_delay_s=0.0,
            status_probe_interval_s=3600,
        )
        app = BackgroundServer(create_app(settings, embedder=embedder)).start()
        try:
            _shoot(app.url, model.url)
        finally:
            app.stop()
            model.stop()
            pg.cleanup()


def _shoot(base_url: str, model_url: str) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        desktop = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 800})
        page = desktop.new_page()
        page.goto("/auth/login")
        page.screenshot(path=IMAGES / "sign-in.png")
        page.click("form[action='/auth/dev-login'] button[name=as_admin]")
        expect(page.locator("#who")).to_have_text("admin@localhost.test")
        _ask(page, "How do I ingest PDF files?")
        page.locator(".msg.assistant .citation").first.hover()
        page.screenshot(path=IMAGES / "chat-desktop-light.png")
        httpx.post(f"{model_url}/_faults", json={"kind": "scripted", "text": CODE_ANSWER})
        page.click("#new-chat")
        _ask(page, "How do I run the tests?")
        page.locator(".msg.assistant").last.screenshot(path=IMAGES / "answer-code-citations.png")
        page.goto("/admin")
        expect(page.locator("#outcomes-chart canvas")).to_have_count(1)
        page.set_viewport_size({"width": 1280, "height": 1000})
        page.locator("h2", has_text="Spend per day").scroll_into_view_if_needed()
        page.evaluate("document.querySelector('#spend-chart').closest('figure').scrollIntoView()")
        page.screenshot(path=IMAGES / "admin.png")
        session = desktop.storage_state()
        for scheme, width, height, name in (
            ("dark", 1280, 800, "chat-desktop-dark.png"),
            ("light", 390, 844, "chat-phone-light.png"),
            ("dark", 390, 844, "chat-phone-dark.png"),
        ):
            context = browser.new_context(
                base_url=base_url,
                viewport={"width": width, "height": height},
                color_scheme=scheme,  # type: ignore[arg-type]
                storage_state=session,
            )
            other = context.new_page()
            other.goto("/")
            expect(other.locator("#who")).to_have_text("admin@localhost.test")
            if width < 800:
                other.click("#menu")
            other.locator("#conversations a.open").last.click()  # the PDF question
            expect(other.locator(".msg.assistant")).not_to_have_count(0)
            other.screenshot(path=IMAGES / name, animations="disabled")  # not mid-slide
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
