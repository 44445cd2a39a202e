"""Files: what an upload is comes from its bytes, never from the client; downloads are
attachments the browser may not sniff; text from a PDF never runs as script in a page."""

import re

import pymupdf
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversions import services
from conversions.models import Document
from tests.conftest import ONE_PAGE
from tests.conftest import stored as stored_file
from tests.security_support import FAST_PASSWORD_HASHERS, HTML, make_user, session_client, token_client
from workers import pipeline


@pytest.fixture
def alice(db, settings):
    settings.ALLOW_ANONYMOUS = False
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
    return make_user("alice")


@pytest.fixture
def completed(alice):
    document = services.create_document(
        owner=alice, upload=SimpleUploadedFile("report.pdf", ONE_PAGE.read_bytes()), max_pages=10
    )
    conversion = services.create_conversion(document=document, owner=alice)
    pipeline.run_conversion(str(conversion.pk))
    return conversion


def test_a_pdf_is_a_pdf_whatever_the_client_calls_it(alice, settings):
    upload = SimpleUploadedFile("page.html", ONE_PAGE.read_bytes(), content_type="text/html")
    answer = token_client(alice).post("/api/v1/documents", {"file": upload}, format="multipart")
    assert answer.status_code == 201 and answer.json()["content_type"] == "application/pdf"
    stored = stored_file(Document.objects.get(pk=answer.json()["id"]).stored_path)
    assert stored.parent == settings.UPLOAD_DIR and stored.suffix == ".pdf" and "page" not in stored.name
    assert settings.STATIC_ROOT not in stored.parents  # never served as a static file


def test_other_bytes_named_pdf_are_what_their_bytes_say(alice, settings):
    upload = SimpleUploadedFile("report.pdf", b"<html><script>alert(1)</script></html>", content_type="application/pdf")
    answer = token_client(alice).post("/api/v1/documents", {"file": upload}, format="multipart")
    assert answer.status_code == 201 and answer.json()["content_type"] == "text/html"  # converted, never served
    stored = stored_file(Document.objects.get(pk=answer.json()["id"]).stored_path)
    assert stored.parent == settings.UPLOAD_DIR and stored.suffix == ".html" and "report" not in stored.name

    upload = SimpleUploadedFile("report.pdf", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, content_type="application/pdf")
    answer = token_client(alice).post("/api/v1/documents", {"file": upload}, format="multipart")
    assert answer.status_code == 415 and "Unsupported file type" in answer.json()["detail"]


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize(
    "path,disposition,content_type",
    [
        ("files/report.md", 'attachment; filename="report.md"', "text/markdown; charset=utf-8"),
        ("files/report_page_0.json", 'attachment; filename="report_page_0.json"', "application/json"),
        ("pages/0/image", 'inline; filename="report_page_0.jpg"', "image/jpeg"),
        ("download.zip", 'attachment; filename="report.zip"', "application/zip"),
    ],
)
def test_downloads_say_what_they_are_and_forbid_sniffing(completed, path, disposition, content_type):
    response = session_client(completed.owner).get(f"/api/v1/conversions/{completed.pk}/{path}")
    assert response.status_code == 200 and body(response)
    assert response["Content-Disposition"] == disposition
    assert response["Content-Type"] == content_type
    assert response["X-Content-Type-Options"] == "nosniff"


def test_original_image_route_forbids_sniffing(completed):
    response = token_client(completed.owner).get("/image/report?page_no=0")
    assert response["Content-Type"] == "image/jpeg" and response["X-Content-Type-Options"] == "nosniff"


def test_script_in_a_pdf_is_escaped_in_the_conversion_page(alice):
    pdf = pymupdf.open()
    pdf.new_page().insert_text((72, 72), "<script>alert(1)</script> <img src=x onerror=alert(2)>")
    upload = SimpleUploadedFile("xss.pdf", pdf.tobytes(), content_type="application/pdf")
    document = services.create_document(owner=alice, upload=upload, max_pages=10)
    conversion = services.create_conversion(document=document, owner=alice)
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"

    html = session_client(alice).get(f"/conversions/{conversion.pk}/", **HTML).content.decode()
    assert "<script>alert(1)" not in html
    assert not re.search(r"<img[^>]*onerror", html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text (the page's Markdown source)
