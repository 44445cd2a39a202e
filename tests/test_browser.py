"""A real browser (Debian's chromium driven by playwright) against real daphne + qcluster:
upload on the dashboard, watch the progress reach 100% without reloading, read the result."""

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import FOUR_PAGES, FOUR_PAGES_TEXT

pytestmark = pytest.mark.acceptance
CHROMIUM = "/usr/bin/chromium"
# Flags for a closed network and a root user (see the machine notes in the README).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page(transactional_db, tmp_path, request):
    # Depends on transactional_db so the database is flushed after playwright's event
    # loop has stopped (Django refuses ORM calls while a loop runs in the thread).
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        yield page
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        browser.close()


def test_upload_watch_progress_and_read_markdown(page, live_web, live_cluster):
    page.goto(live_web + "/")
    page.set_input_files("#file-input", str(FOUR_PAGES))
    page.click("#convert-button")
    page.wait_for_url("**/conversions/*/")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    expect(page.locator("#status")).to_have_text("completed", timeout=60_000)
    expect(page.locator("#progress")).to_have_attribute("value", "100")
    expect(page.locator("#message")).to_have_text("Conversion completed successfully")
    expect(page.locator("#results .rendered").first).to_contain_text(FOUR_PAGES_TEXT)
    expect(page.locator("#pages li.done")).to_have_count(4)
    assert navigations == []  # all of it live, no reload

    page.locator("[data-toggle-raw]").first.click()
    expect(page.locator(".raw").first).to_be_visible()
    # decode() waits for the image to load (it may still be on its way after the click); a
    # broken image rejects, so the test fails on it as it would on a width of 0.
    assert page.locator("#results img").first.evaluate("image => image.decode().then(() => image.naturalWidth)") > 0
