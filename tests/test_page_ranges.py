"""Page selections (`pages`): parsed as users write them, checked at submit (422 naming the
bad part) or in the worker, and converted to outputs that cover exactly those pages."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from conversions import services
from conversions.models import Conversion
from tests.conftest import published, stored
from tests.live import pdf_of
from workers import page_ranges, pipeline
from workers.ocr.base import PageOcr
from workers.pdf import PdfPage, open_pdf


@pytest.mark.parametrize(
    "text,count,pages",
    [
        ("1-3,7,10-", 12, [0, 1, 2, 6, 9, 10, 11]),
        ("7", 7, [6]),
        ("3-", 3, [2]),
        (" 2 - 4 , 9 ", 10, [1, 2, 3, 8]),
        ("5,1-2,2-3", 5, [0, 1, 2, 4]),  # document order, each page once
        ("", 3, [0, 1, 2]),  # blank: every page
    ],
)
def test_selections_resolve_to_document_pages(text, count, pages):
    assert page_ranges.selected_pages(text, count) == pages


@pytest.mark.parametrize(
    "text,count,reason",
    [
        ("1-3,x", 5, 'pages: \'x\' is not a page number or a range like "2-5" or "10-".'),
        ("1-2-3", 5, 'pages: \'1-2-3\' is not a page number or a range like "2-5" or "10-".'),
        ("-3", 5, 'pages: \'-3\' is not a page number or a range like "2-5" or "10-".'),
        ("1,,2", 5, 'pages: an empty part between commas; give pages like "1-3,7,10-".'),
        (" , ", 5, 'pages: an empty part between commas; give pages like "1-3,7,10-".'),
        ("5-3", 9, "pages: '5-3' is reversed; write 3-5."),
        ("0", 5, "pages: '0': pages are numbered from 1."),
        ("2,6", 5, "pages: '6' is out of range: the document has 5 pages."),
        ("4-9", 5, "pages: '4-9' is out of range: the document has 5 pages."),
        ("2-", 1, "pages: '2-' is out of range: the document has 1 page."),
        ("1" * 1001, 5, "pages: the selection is longer than 1000 characters."),
    ],
)
def test_bad_selections_name_the_bad_part(text, count, reason):
    with pytest.raises(page_ranges.PageRangeError) as error:
        page_ranges.selected_pages(text, count)
    assert str(error.value) == reason


@pytest.fixture
def api(db):
    return APIClient()


def submit(api, pages: str, page_count: int = 5, name: str = "report.pdf"):
    upload = SimpleUploadedFile(name, pdf_of(page_count, "Report"), content_type="application/pdf")
    return api.post("/api/v1/conversions", {"file": upload, "pages": pages, "engine": "textlayer"}, format="multipart")


@pytest.mark.parametrize(
    "pages,reason",
    [
        ("2-9", "pages: '2-9' is out of range: the document has 5 pages."),
        ("two", 'pages: \'two\' is not a page number or a range like "2-5" or "10-".'),
        ("4-2", "pages: '4-2' is reversed; write 2-4."),
        ("1,", 'pages: an empty part between commas; give pages like "1-3,7,10-".'),
    ],
)
def test_a_bad_selection_is_a_422_at_submit_and_stores_nothing(api, settings, pages, reason):
    response = submit(api, pages)
    assert response.status_code == 422
    assert response.json() == {"detail": reason}
    assert Conversion.objects.count() == 0 and not any(settings.UPLOAD_DIR.iterdir())


def test_a_selection_of_an_uploaded_document_is_checked_too(api):
    document = api.post(
        "/api/v1/documents", {"file": SimpleUploadedFile("d.pdf", pdf_of(2, "D"))}, format="multipart"
    ).json()
    response = api.post("/api/v1/conversions", {"document": document["id"], "pages": "3"}, format="json")
    assert response.status_code == 422 and "the document has 2 pages" in response.json()["detail"]


def test_outputs_cover_exactly_the_selected_pages_and_name_their_source(api, settings):
    body = submit(api, "2,4-").json()
    assert (body["pages"], body["pages_total"]) == ("2,4-", 3)
    assert pipeline.run_conversion(body["id"]) == "completed"

    done = api.get(f"/api/v1/conversions/{body['id']}").json()
    assert (done["pages_done"], done["pages_total"], done["progress"]) == (3, 3, 100)
    pages = api.get(f"/api/v1/conversions/{body['id']}/pages").json()["pages"]
    assert [(page["page_no"], page["source_page"]) for page in pages] == [(0, 2), (1, 4), (2, 5)]
    assert ["Report page 2" in pages[0]["markdown"], "Report page 4" in pages[1]["markdown"]] == [True, True]

    folder = published(body["id"])
    # Job pages are numbered 0..n-1, as the original app numbers its files.
    assert sorted(path.name for path in folder.glob("report_page_*.jpg")) == [
        "report_page_0.jpg",
        "report_page_1.jpg",
        "report_page_2.jpg",
    ]
    records = [json.loads(line) for line in (folder / "report.jsonl").read_text().splitlines()]
    assert [(record["page_no"], record["source_page"]) for record in records] == [(0, 2), (1, 4), (2, 5)]

    markdown = api.get(f"/api/v1/conversions/{body['id']}/markdown").content.decode()
    assert (folder / "report.md").read_text() == markdown
    assert markdown.startswith("<!-- page 2 -->\n\n")
    assert markdown.index("<!-- page 4 -->") < markdown.index("Report page 4") < markdown.index("<!-- page 5 -->")
    assert "Report page 1" not in markdown and "Report page 3" not in markdown


def test_without_a_selection_the_markdown_has_no_page_markers(api, settings):
    body = submit(api, "").json()
    pipeline.run_conversion(body["id"])
    markdown = api.get(f"/api/v1/conversions/{body['id']}/markdown").content.decode()
    assert "<!--" not in markdown and "Report page 1" in markdown
    pages = api.get(f"/api/v1/conversions/{body['id']}/pages").json()["pages"]
    assert [page["source_page"] for page in pages] == [1, 2, 3, 4, 5]


def test_the_progress_message_says_how_many_of_the_pages_run(api):
    body = submit(api, "5").json()
    conversion = services.claim_conversion(conversion_id=body["id"], worker_id="w")
    services.record_pdf_loaded(conversion=conversion, pages_total=1, page_count=5)
    assert Conversion.objects.get(pk=body["id"]).message == "PDF loaded: converting 1 of its 5 pages"


def test_a_selection_resumes_after_its_checkpointed_pages(api, settings):
    body = submit(api, "3-4").json()
    running = services.claim_conversion(conversion_id=body["id"], worker_id="crashed-worker")
    services.checkpoint_page(
        conversion=running,
        page_no=0,
        source_page=3,
        page=PageOcr(cells=[], engine="earlier"),
        markdown="third page, first attempt",
        markdown_nohf="",
        duration_ms=1,
    )
    services.release_conversion(conversion=running)

    assert pipeline.run_conversion(body["id"]) == "completed"
    pages = api.get(f"/api/v1/conversions/{body['id']}/pages").json()["pages"]
    assert [(page["page_no"], page["source_page"], page["engine"]) for page in pages][0] == (0, 3, "earlier")
    assert pages[1]["source_page"] == 4 and "Report page 4" in pages[1]["markdown"]
    # The first attempt's page image was not staged here: it is rendered again, from document page 3.
    image = (published(body["id"]) / "report_page_0.jpg").read_bytes()
    with open_pdf(stored(Conversion.objects.get(pk=body["id"]).document.stored_path)) as document:
        assert image == PdfPage(page=document[2], dpi=settings.RENDER_DPI).jpeg()
        assert image != PdfPage(page=document[0], dpi=settings.RENDER_DPI).jpeg()


def test_a_selection_past_the_pages_found_in_the_worker_fails_the_job_with_the_reason(api, make_document):
    """Documents whose pages exist only once converted (Office files) are checked in the
    worker; the job fails with the same reason a submit would give."""
    document = make_document()
    conversion = services.create_conversion(document=document, owner=document.owner)
    Conversion.objects.filter(pk=conversion.pk).update(page_selection="3-9", pages_total=None)
    assert pipeline.run_conversion(str(conversion.pk)) == "failed"
    failed = Conversion.objects.get(pk=conversion.pk)
    assert failed.error == "pages: '3-9' is out of range: the document has 4 pages."
    assert failed.pages.count() == 0 and not failed.output_dir


def test_the_conversion_page_names_each_result_by_its_page_of_the_document(api, client):
    body = submit(api, "3,5").json()
    pipeline.run_conversion(body["id"])
    html = client.get(f"/conversions/{body['id']}/", HTTP_ACCEPT="text/html").content.decode()
    assert "<h3>Page 3</h3>" in html and "<h3>Page 5</h3>" in html and "<h3>Page 1</h3>" not in html
