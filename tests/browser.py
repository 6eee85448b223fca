"""Shared by the browser tests: Debian's Chromium driven by Playwright, dev sign-in, and a
check that the page raised no JavaScript error (a broken module would otherwise only show
as a missing element)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from app.localmodel.runner import BackgroundServer

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Chromium is missing: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


def watch_errors(page: Page) -> list[str]:
    """JavaScript errors the page raises from now on (uncaught exceptions, failed imports)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


@pytest.fixture
def page(browser: Browser, app_server: BackgroundServer) -> Iterator[Page]:
    context = browser.new_context(base_url=app_server.url, viewport=DESKTOP)
    page = context.new_page()
    errors = watch_errors(page)
    dev_sign_in(page, "browser@example.com")
    yield page
    context.close()
    assert errors == []


def dev_sign_in(page: Page, email: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    page.fill("input[name=email]", email)
    page.click("form[action='/auth/dev-login'] button")
    expect(page.locator("#who")).to_have_text(email)


def ask(page: Page, question: str) -> None:
    # The page sends a question only once /api/me has answered (its CSRF token); until then
    # Send keeps the text. #who shows the email from that answer: clicked before it, under a
    # loaded suite, the question never left.
    expect(page.locator("#who")).not_to_have_text("")
    page.fill("#question", question)
    page.click("#send")
