"""The Queue page follows the queue live over /ws/v1/queue: a real browser (Debian's
chromium driven by playwright) signed in to the admin of a real daphne."""

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ONE_PAGE
from tests.live import submit
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_cancel_live import slow_cluster, slow_engine  # noqa: F401 (fixtures)
from tests.test_progress_live import PAGES, long_pdf

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


def signed_in_to_queue(page, live_web):
    page.goto(f"{live_web}/admin/login/?next={QUEUE}")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.wait_for_url(f"**{QUEUE}")
    expect(page.locator("#queue-socket-state")).to_have_text("live", timeout=30_000)
    return page


def test_queue_page_follows_jobs_without_reloading(browser_page, live_web, live_client):
    page = signed_in_to_queue(browser_page, live_web)
    expect(page.locator('[data-status="queued"]')).to_have_text("0", timeout=30_000)
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))

    # No cluster runs: the job waits, and nothing runs, so the page does not poll either.
    job = submit(live_client, ONE_PAGE).json()["id"]
    expect(page.locator(f'[data-queued="{job}"]')).to_be_visible(timeout=30_000)
    expect(page.locator('[data-status="queued"]')).to_have_text("1", timeout=30_000)

    assert live_client.post(f"/api/v1/conversions/{job}/cancel").status_code == 200
    expect(page.locator(f'[data-queued="{job}"]')).to_have_count(0, timeout=30_000)
    expect(page.locator('[data-status="cancelled"]')).to_have_text("1", timeout=30_000)
    assert navigations == []


def test_running_jobs_pages_advance_on_the_page_between_state_changes(
    browser_page, live_web, live_client, slow_cluster
):
    page = signed_in_to_queue(browser_page, live_web)
    response = live_client.post(
        "/api/v1/conversions",
        data={"engine": "dotsocr"},
        files={"file": ("slow.pdf", long_pdf("slow"), "application/pdf")},
    )
    job = response.json()["id"]

    task = page.locator(f'[data-active-task="{job}"]')
    expect(task).to_be_visible(timeout=30_000)  # queued -> running: an event on /ws/v1/queue
    # Pages finish without a state change; the page re-reads them while jobs run.
    expect(task).to_contain_text(re.compile(rf"\b([3-9]|1[0-9])/{PAGES}\b"), timeout=30_000)
    expect(task).to_contain_text(re.compile(r"\b\d+ s\b"), timeout=30_000)  # heartbeat age
    # The cluster's one worker process is shown running it.
    expect(page.locator("#queue-clusters [data-worker] a")).to_have_text("slow.pdf", timeout=30_000)

    assert live_client.post(f"/api/v1/conversions/{job}/cancel").status_code == 200
    expect(task).to_have_count(0, timeout=30_000)
