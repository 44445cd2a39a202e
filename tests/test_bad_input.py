"""Bad uploads get a 4xx with a readable detail, and nothing is left behind."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from conversions.models import Conversion, Document
from tests.conftest import ENCRYPTED, FOUR_PAGES, truncated_pdf

BAD_UPLOADS = {
    "not a pdf": (b"GIF89a this is an image pretending to be a pdf" * 20, 400, "not a PDF"),
    "zero bytes": (b"", 400, "empty"),
    "truncated": (truncated_pdf(), 400, "truncated"),
    "encrypted": (ENCRYPTED.read_bytes(), 400, "password"),
    "only a header": (b"%PDF-1.7\n", 400, "PDF"),
}


@pytest.fixture
def api(db):
    return APIClient()


@pytest.mark.parametrize("route", ["/api/v1/documents", "/api/v1/conversions"])
@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_upload_is_refused_with_a_reason_and_leaves_nothing(api, settings, route, case):
    content, status, words = BAD_UPLOADS[case]
    upload = SimpleUploadedFile("document.pdf", content, content_type="application/pdf")
    response = api.post(route, {"file": upload}, format="multipart")
    assert response.status_code == status
    assert words.lower() in response.json()["detail"].lower()
    assert Document.objects.count() == 0 and Conversion.objects.count() == 0
    assert list(settings.UPLOAD_DIR.iterdir()) == []


def test_upload_over_the_size_limit_is_a_413(api, settings):
    settings.MAX_UPLOAD_MB = 1
    content = FOUR_PAGES.read_bytes() + b"\n%" + b"x" * (1024 * 1024 + 1)
    upload = SimpleUploadedFile("big.pdf", content, content_type="application/pdf")
    response = api.post("/api/v1/conversions", {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert response.json() == {"detail": "File is larger than the 1 MB limit."}
    assert list(settings.UPLOAD_DIR.iterdir()) == []


def test_pdf_over_the_page_limit_is_a_413(api, settings):
    settings.MAX_PAGES = 3
    upload = SimpleUploadedFile("long.pdf", FOUR_PAGES.read_bytes(), content_type="application/pdf")
    response = api.post("/api/v1/documents", {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert response.json() == {"detail": "The PDF has 4 pages; the limit is 3."}


def test_missing_file_field_is_a_400(api):
    response = api.post("/api/v1/documents", {}, format="multipart")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("file:")


def test_good_upload_after_bad_ones_still_works(api):
    api.post("/api/v1/documents", {"file": SimpleUploadedFile("x.pdf", b"")}, format="multipart")
    upload = SimpleUploadedFile("good.pdf", FOUR_PAGES.read_bytes(), content_type="application/pdf")
    assert api.post("/api/v1/conversions", {"file": upload}, format="multipart").status_code == 201
