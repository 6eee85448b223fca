"""axe-core (vendored, static/vendor/axe-core/) checks each page people use: the chat with
a rendered answer (light and dark), sign-in, status, about and admin. No violation of
impact "serious" or "critical" is allowed; the per-page counts of every impact are
printed (`pytest -s`) for the record."""
# ruff: noqa: F811  (the browser fixture is imported from tests/browser.py)

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page, expect

from app.localmodel.runner import BackgroundServer
from tests.browser import DESKTOP, PHONE, ask, browser, watch_errors  # noqa: F401

AXE = "/static/vendor/axe-core/axe.min.js"
BLOCKING = {"serious", "critical"}


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now: [{id, impact, nodes: [...]}, ...]."""
    page.add_script_tag(url=AXE)
    result: dict[str, Any] = page.evaluate("axe.run(document, { resultTypes: ['violations'] })")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]


def check(page: Page, name: str) -> None:
    violations = axe_violations(page)
    counts = {impact: 0 for impact in ("critical", "serious", "moderate", "minor")}
    for v in violations:
        counts[v["impact"]] += 1
    print(f"axe {name}: {counts} {[(v['id'], v['impact']) for v in violations]}")
    assert [v for v in violations if v["impact"] in BLOCKING] == [], name


def test_pages_have_no_serious_or_critical_axe_violations(
    browser: Browser, app_server: BackgroundServer
) -> None:
    for scheme, viewport in (("light", DESKTOP), ("dark", PHONE)):
        context = browser.new_context(
            base_url=app_server.url,
            viewport=viewport,
            color_scheme=scheme,  # type: ignore[arg-type]
        )
        page = context.new_page()
        errors = watch_errors(page)
        page.goto("/auth/login")
        check(page, f"sign-in ({scheme})")
        page.click("form[action='/auth/dev-login'] button[name=as_admin]")
        expect(page.locator("#who")).to_have_text("admin@localhost.test")
        ask(page, "How do I ingest PDF files?")
        expect(page.locator(".msg.assistant.complete .sources")).to_be_visible(timeout=30_000)
        page.locator(".msg.assistant .citation").first.focus()  # the preview is showing
        check(page, f"chat with an answer ({scheme}, {viewport['width']} px)")
        page.goto("/status")
        check(page, f"status ({scheme})")
        page.goto("/about")
        check(page, f"about ({scheme})")
        page.goto("/admin")
        expect(page.locator("#calls tbody tr").first).to_be_visible()
        check(page, f"admin ({scheme})")
        assert errors == []
        context.close()
