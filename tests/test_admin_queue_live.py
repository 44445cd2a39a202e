"""The Queue page follows the queue live over /ws/v1/queue: a real browser (Debian's
chromium driven by playwright) signed in to the admin of a real daphne."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ONE_PAGE
from tests.live import submit
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.acceptance
QUEUE = "/admin/conversions/conversion/queue/"


@pytest.fixture
def staff_user(transactional_db):
    # Created before playwright starts: Django refuses ORM calls while its loop runs.
    return get_user_model().objects.create_superuser("admin", "admin@example.invalid", "correct horse battery")


@pytest.fixture
def browser_page(staff_user, live_client, tmp_path, request):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        yield page
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        browser.close()


def test_queue_page_follows_jobs_without_reloading(browser_page, live_web, live_client):
    page = browser_page
    page.goto(f"{live_web}/admin/login/?next={QUEUE}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{QUEUE}")
    expect(page.locator("#queue-socket-state")).to_have_text("live", timeout=10_000)
    expect(page.locator('[data-status="queued"]')).to_have_text("0")
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    # No cluster runs: the job waits, and nothing runs, so the page does not poll either.
    job = submit(live_client, ONE_PAGE).json()["id"]
    expect(page.locator(f'[data-queued="{job}"]')).to_be_visible(timeout=10_000)
    expect(page.locator('[data-status="queued"]')).to_have_text("1")

    assert live_client.post(f"/api/v1/conversions/{job}/cancel").status_code == 200
    expect(page.locator(f'[data-queued="{job}"]')).to_have_count(0, timeout=10_000)
    expect(page.locator('[data-status="cancelled"]')).to_have_text("1")
    assert navigations == []
