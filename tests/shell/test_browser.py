"""A person's view: headless Chromium opens every topic through its shared link (its family page with the
topic's tab selected), presses its main button and sees a real output (the text each tab module names in
BROWSER_CHECK), with no error message; and the home page links every family page."""

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
def browser(served_app):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` (or set $CHROMIUM).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    yield page
    page.close()


def assert_no_error_toast(page):
    assert page.locator(".toast-body.error").count() == 0, page.locator(".toast-body").all_inner_texts()


@pytest.mark.parametrize("topic", TOPICS, ids=[topic.slug for topic in TOPICS])
def test_topic_link_opens_the_topic_and_its_main_button_gives_a_real_output(served_app, page, topic):
    """The shared link (`/<family>?topic=<slug>`) opens the family page on the topic's tab."""
    check = importlib.import_module(topic.tab_module).BROWSER_CHECK
    page.goto(served_app.rstrip("/") + topic.link, wait_until="load")
    tab = page.get_by_role("tab", name=topic.title, exact=True)
    tab.wait_for(state="visible", timeout=60_000)
    page.wait_for_function(
        "name => [...document.querySelectorAll('[role=tab]')].some("
        "t => t.textContent.trim() === name && t.getAttribute('aria-selected') === 'true')",
        arg=topic.title,
        timeout=60_000,
    )
    panel = page.locator(f"#{topic.element_id}")
    panel.get_by_role("button", name=check["button"], exact=True).click()
    panel.get_by_text(check["expect_text"]).first.wait_for(state="visible", timeout=check.get("timeout_ms", 60_000))
    assert_no_error_toast(page)


def test_home_page_links_every_family_page_and_refreshes(served_app, page):
    from apps.about import tab as home

    page.goto(served_app, wait_until="load")
    for family in {topic.family for topic in TOPICS}:
        page.locator(f"a[href='{family}']").first.wait_for(state="attached", timeout=60_000)
    page.get_by_text("This app's environment").click()
    page.get_by_role("button", name=home.BROWSER_CHECK["button"], exact=True).click()
    page.get_by_text(home.BROWSER_CHECK["expect_text"]).first.wait_for(state="visible", timeout=60_000)
    assert_no_error_toast(page)
