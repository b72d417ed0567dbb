"""A person's view: headless Chromium opens the page, visits every tab, presses its main button and
sees a real output (the text each tab module names in BROWSER_CHECK), with no error message."""

import importlib
import os

import pytest

from apps import TOPICS

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(served_app):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` (or set $CHROMIUM).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(served_app, wait_until="load")
        page.get_by_role("tab").first.wait_for(state="visible", timeout=60_000)
        yield page
        browser.close()


@pytest.mark.parametrize("topic", TOPICS, ids=[topic.title for topic in TOPICS])
def test_tab_main_button_gives_a_real_output(page, topic):
    check = importlib.import_module(topic.tab_module).BROWSER_CHECK
    page.get_by_role("tab", name=topic.title).click()
    panel = page.locator(f"#{topic.element_id}")
    panel.get_by_role("button", name=check["button"], exact=True).click()
    panel.get_by_text(check["expect_text"]).first.wait_for(state="visible", timeout=check.get("timeout_ms", 60_000))
    assert page.locator(".toast-body.error").count() == 0, page.locator(".toast-body").all_inner_texts()
