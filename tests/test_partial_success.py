"""on_page_error: "fail" (the default) fails the job when a page still fails after the
engine's retries; "skip" records that page with its reason and completes the others,
and the API, the Markdown and the final event say which page is missing."""

import io
import zipfile

import pymupdf
import pytest
from django.test import Client

from conversions import services
from conversions.models import Conversion
from conversions.progress import events
from tests.dotsocr_standin import HTTP_500, NORMAL, DotsOcrStandin, use_standin
from workers import pipeline


@pytest.fixture
def standin():
    with DotsOcrStandin() as server:
        yield server


@pytest.fixture
def dotsocr_settings(settings, standin):
    use_standin(
        settings, standin, in_flight_per_server=1, threads=1
    )  # pages in order, so the script below fails page 2
    settings.RENDER_DPI = 72
    return settings


@pytest.fixture
def three_pages(tmp_path):
    document = pymupdf.open()
    for number in range(3):
        document.new_page().insert_text((72, 72), f"Page {number + 1} of a scanned report")
    path = tmp_path / "report.pdf"
    document.save(path)
    return path


def run_with_page_two_failing(standin, make_document, owner, path, **options):
    standin.script(NORMAL, HTTP_500, HTTP_500)  # page 1; page 2 and its one retry; then normal
    conversion = services.create_conversion(document=make_document(path), owner=owner, engine="dotsocr", **options)
    outcome = pipeline.run_conversion(str(conversion.pk))
    return outcome, Conversion.objects.get(pk=conversion.pk)


def test_skip_completes_the_job_and_lists_the_failed_page_with_its_reason(
    dotsocr_settings, standin, make_document, owner, three_pages
):
    outcome, conversion = run_with_page_two_failing(standin, make_document, owner, three_pages, on_page_error="skip")

    assert outcome == "completed" and conversion.status == "completed", conversion.error
    [failed] = conversion.pages_failed
    assert failed["page"] == 2 and failed["source_page"] == 2
    assert failed["reason"].startswith("Page 2: ") and "500" in failed["reason"]
    assert "1 of 3 pages failed (page 2)" in conversion.message
    pages = list(conversion.pages.order_by("page_no"))
    assert [page.status for page in pages] == ["done", "failed", "done"]
    assert pages[0].markdown and pages[2].markdown and pages[1].error == failed["reason"]


def test_the_markdown_the_api_and_the_final_event_say_which_page_is_missing(
    dotsocr_settings, standin, make_document, owner, three_pages
):
    _, conversion = run_with_page_two_failing(standin, make_document, owner, three_pages, on_page_error="skip")
    client = Client()

    markdown = client.get(f"/api/v1/conversions/{conversion.pk}/markdown").content.decode()
    assert "<!-- page 2 failed: Page 2: " in markdown  # for programs
    assert "> **Page 2 could not be converted:** Page 2: " in markdown  # for readers
    assert markdown.index("On Answering Like a Model") < markdown.index("page 2 failed")  # page 1 is there
    html = client.get(f"/api/v1/conversions/{conversion.pk}/html").content.decode()
    assert "<strong>Page 2 could not be converted:</strong>" in html
    archive = client.get(f"/api/v1/conversions/{conversion.pk}/download.zip")
    files = zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content)))
    assert "Page 2 could not be converted" in files.read("report.md").decode()

    body = client.get(f"/api/v1/conversions/{conversion.pk}").json()
    assert body["status"] == "completed" and body["on_page_error"] == "skip"
    assert body["pages_failed"] == conversion.pages_failed and len(body["pages_failed"]) == 1
    final = events.build_conversion_event(conversion)
    assert final["status"] == "completed" and final["pages_failed"] == conversion.pages_failed
    assert "page 2" in final["message"]


def test_fail_is_the_default_and_fails_the_job_naming_the_page(
    dotsocr_settings, standin, make_document, owner, three_pages
):
    outcome, conversion = run_with_page_two_failing(standin, make_document, owner, three_pages)

    assert conversion.on_page_error == "fail"
    assert outcome == "failed" and conversion.error.startswith("Page 2: ")
    assert conversion.pages_failed == []


def test_a_job_without_failures_lists_none(dotsocr_settings, standin, make_document, owner, three_pages):
    conversion = services.create_conversion(
        document=make_document(three_pages), owner=owner, engine="dotsocr", on_page_error="skip"
    )
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    conversion.refresh_from_db()
    assert conversion.pages_failed == [] and conversion.message == "Conversion completed successfully"
    assert "pages_failed" not in events.build_conversion_event(conversion)


def test_on_page_error_is_accepted_on_create_and_in_batches_and_checked(db, three_pages):
    client = Client()
    with open(three_pages, "rb") as upload:
        created = client.post("/api/v1/conversions", {"file": upload, "on_page_error": "skip"})
    assert created.status_code == 201 and created.json()["on_page_error"] == "skip"
    with open(three_pages, "rb") as upload:
        batch = client.post("/api/v1/batches", {"file": [upload], "on_page_error": "skip"})
    assert batch.status_code == 201 and batch.json()["conversions"][0]["on_page_error"] == "skip"
    with open(three_pages, "rb") as upload:
        refused = client.post("/api/v1/conversions", {"file": upload, "on_page_error": "ignore"})
    assert refused.status_code == 400 and "on_page_error" in refused.json()["detail"]
