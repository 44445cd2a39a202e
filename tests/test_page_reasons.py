"""Each page records which engine path produced it and why, and a page that shows ink
but yields no text is recorded as such, never as an empty success (issue 15, kind 2)."""

import json

import pymupdf
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from bench import trust_samples as documents
from conversions.models import Conversion
from tests.conftest import ONE_PAGE, published
from workers import pipeline


@pytest.fixture
def cpu_only(settings):
    settings.DOTSOCR_CONFIGURED = False


def pdf_of(tmp_path, *pages: bytes):
    combined = pymupdf.open()
    for data in pages:
        combined.insert_pdf(pymupdf.open("pdf", data))
    path = tmp_path / "mixed.pdf"
    combined.save(path)
    return path


def test_unreadable_page_is_failed_with_its_reason_and_the_job_says_so(make_conversion, cpu_only, tmp_path, settings):
    path = pdf_of(tmp_path, pymupdf.open(ONE_PAGE).tobytes(), documents.ink_without_text(), documents.blank_page())
    conversion = make_conversion(path, engine="auto")
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    done = Conversion.objects.get(pk=conversion.pk)
    text_page, ink_page, blank_page = done.pages.order_by("page_no")

    assert (text_page.status, text_page.engine) == ("done", "textlayer")
    assert text_page.engine_reason.startswith("textlayer trusted: ")
    assert ink_page.status == "failed" and ink_page.markdown == ""
    assert ink_page.error.startswith("Page 2 shows ink (") and "no text could be read" in ink_page.error
    assert "no text on a page with ink" in ink_page.engine_reason
    assert (blank_page.status, blank_page.error, blank_page.markdown) == ("done", "", "")
    assert blank_page.engine_reason.endswith("blank page (no ink)")
    assert done.status == "completed"
    assert done.message == (
        "Conversion completed; 1 of 3 pages could not be read (page 2): they show ink but no text was found"
    )

    user = done.owner
    api = APIClient()
    api.force_authenticate(user)
    pages = api.get(f"/api/v1/conversions/{done.pk}/pages").json()["pages"]
    assert [(page["status"], page["engine_reason"]) for page in pages] == [
        (page.status, page.engine_reason) for page in (text_page, ink_page, blank_page)
    ]
    assert pages[1]["error"] == ink_page.error

    jsonl = (published(done) / f"{done.document.stem}.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in jsonl]
    assert [record["engine_reason"] for record in records] == [page["engine_reason"] for page in pages]
    assert records[1]["status"] == "failed" and records[1]["error"] == ink_page.error

    staff = get_user_model().objects.create_superuser("admin", "admin@example.invalid", "correct horse battery")
    browser = Client()
    browser.force_login(staff)
    html = browser.get(f"/admin/conversions/conversion/{done.pk}/change/").content.decode()
    assert "textlayer trusted: " in html and "blank page (no ink)" in html and "Page 2 shows ink (" in html


def test_the_shifted_tounicode_sample_converts_to_its_real_words(make_conversion, cpu_only, tmp_path, settings):
    path = tmp_path / "shifted.pdf"
    path.write_bytes(documents.shifted_tounicode())
    conversion = make_conversion(path, engine="auto")
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    page = Conversion.objects.get(pk=conversion.pk).pages.get()
    assert page.engine == "rapidocr" and page.engine_reason.startswith("textlayer rejected: ")
    assert "Maintenance Report 2024" in page.markdown and "0DLQWHQDQFH" not in page.markdown


def test_a_photograph_without_text_is_done_and_kept_as_a_picture():
    from workers.ocr.auto import AutoEngine
    from workers.ocr.trust import explain_empty
    from workers.pdf import PdfPage

    document = pymupdf.open()
    page = document.new_page(width=300, height=300)
    photo = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 60, 60), False)
    photo.set_rect(photo.irect, (40, 120, 200))
    photo.set_rect(pymupdf.IRect(10, 10, 30, 50), (200, 60, 20))
    page.insert_image(pymupdf.Rect(30, 30, 270, 270), pixmap=photo)
    pdf_page = PdfPage(page=page, dpi=100)
    result = explain_empty(pdf_page, AutoEngine().recognize(pdf_page, prompt_mode="prompt_layout_all_en"))
    assert [cell.category for cell in result.cells] == ["Picture"]
    assert result.error == "" and result.reason.endswith("a picture without text, kept as a picture")
