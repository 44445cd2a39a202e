"""The admin's actions change jobs only through services, and say why when they cannot."""

import re
import shutil

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from conversions import services
from conversions.models import Conversion, PageResult
from tests.conftest import FOUR_PAGES, ONE_PAGE, stored
from workers import pipeline


@pytest.fixture
def staff(db):
    user = get_user_model().objects.create_superuser("admin", "admin@example.invalid", "correct horse battery")
    client = Client()
    client.force_login(user)
    return client


def act(staff, action, conversions):
    return staff.post(
        "/admin/conversions/conversion/",
        {
            "action": action,
            "_selected_action": [str(conversion.pk) for conversion in conversions],
        },
        follow=True,
    )


def test_admin_lists_conversions(staff, make_conversion):
    conversion = make_conversion(ONE_PAGE)
    page = staff.get("/admin/conversions/conversion/")
    assert page.status_code == 200 and str(conversion.pk) in page.content.decode()
    assert staff.get(f"/admin/conversions/conversion/{conversion.pk}/change/").status_code == 200


def test_cancel_and_retry_actions(staff, make_conversion):
    queued, done = make_conversion(ONE_PAGE), make_conversion(ONE_PAGE)
    pipeline.run_conversion(str(done.pk))  # runs the oldest queued job
    queued, done = Conversion.objects.get(pk=queued.pk), Conversion.objects.get(pk=done.pk)
    finished, waiting = (queued, done) if queued.status == "completed" else (done, queued)

    page = act(staff, "cancel", [waiting, finished]).content.decode()
    assert Conversion.objects.get(pk=waiting.pk).status == "cancelled"
    assert "cannot be cancelled" in page and "Cancelled: 1 conversion(s)." in page

    act(staff, "retry", [waiting])
    assert Conversion.objects.get(pk=waiting.pk).status == "queued"


def test_priority_actions(staff, make_conversion):
    conversion = make_conversion(ONE_PAGE)
    act(staff, "raise_priority", [conversion])
    act(staff, "raise_priority", [conversion])
    act(staff, "lower_priority", [conversion])
    assert Conversion.objects.get(pk=conversion.pk).priority == 10


def test_admin_needs_staff(db):
    response = Client().get("/admin/conversions/conversion/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- the detail view ---------------------------------------------------------------------


def change_page(client, conversion) -> str:
    response = client.get(f"/admin/conversions/conversion/{conversion.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def page_rows(html: str) -> list[dict[str, str]]:
    """The per-page inline's rows: {field: rendered cell}."""
    rows = re.findall(r'<tr class="form-row[^"]*"\s+id="pages-\d+">(.*?)</tr>', html, re.S)
    return [dict(re.findall(r'<td class="field-(\w+)">\s*<p>(.*?)</p>', row, re.S)) for row in rows]


def test_detail_shows_each_page_and_links_to_every_output(staff, make_conversion):
    conversion = make_conversion(FOUR_PAGES)
    pipeline.run_conversion(str(conversion.pk))
    conversion = Conversion.objects.get(pk=conversion.pk)
    html = change_page(staff, conversion)

    rows = page_rows(html)
    assert len(rows) == 4
    for page, row in zip(conversion.pages.order_by("page_no"), rows, strict=True):
        assert (row["page_no"], row["status"], row["engine"], row["duration_ms"], row["error"]) == (
            str(page.page_no),
            "Done",
            "textlayer",
            str(page.duration_ms),
            "-",
        )
        assert f"/files/pdflatex-4-pages_page_{page.page_no}.md" in row["files"]  # the page's own files
    links = set(re.findall(rf'href="(/api/v1/conversions/{conversion.pk}/[^"]+)"', html))
    files = {
        f"/api/v1/conversions/{conversion.pk}/files/{path.name}" for path in stored(conversion.output_dir).iterdir()
    }
    assert files <= links  # every output file is linked
    api = f"/api/v1/conversions/{conversion.pk}"
    assert {f"{api}/markdown", f"{api}/download.zip"} <= links
    for link in links:
        assert staff.get(link).status_code == 200, link


def test_detail_shows_a_failed_pages_error_and_why_there_are_no_outputs(staff, make_conversion):
    conversion = make_conversion(ONE_PAGE)
    claimed = services.claim_conversion(conversion_id=conversion.pk, worker_id="test:1")
    PageResult.objects.create(
        conversion=claimed,
        page_no=0,
        status="failed",
        engine="dotsocr",
        duration_ms=1234,
        error="The dots.ocr server failed 3 times",
    )
    services.fail_conversion(conversion=claimed, error="Page 1: The dots.ocr server failed 3 times")

    html = change_page(staff, conversion)

    [row] = page_rows(html)
    assert (row["status"], row["engine"], row["duration_ms"], row["error"], row["files"]) == (
        "Failed",
        "dotsocr",
        "1234",
        "The dots.ocr server failed 3 times",
        "-",
    )
    assert f"Conversion {conversion.pk} has no outputs (status: failed)." in html
    assert "/files/" not in html


def test_detail_says_when_the_output_folder_is_gone(staff, make_conversion):
    conversion = make_conversion(ONE_PAGE)
    pipeline.run_conversion(str(conversion.pk))
    conversion = Conversion.objects.get(pk=conversion.pk)
    shutil.rmtree(stored(conversion.output_dir))
    assert f"The output folder {conversion.output_dir} is missing." in change_page(staff, conversion)


def test_detail_needs_staff(db, make_conversion):
    conversion = make_conversion(ONE_PAGE)
    user = get_user_model().objects.create_user("visitor", "v@example.invalid", "pw")
    signed_in = Client()
    signed_in.force_login(user)
    for client in (Client(), signed_in):
        response = client.get(f"/admin/conversions/conversion/{conversion.pk}/change/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
