"""The native API (/api/v1/), in-process with DRF's client against the real database."""

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from conversions.models import Conversion, Document
from tests.conftest import FOUR_PAGES, FOUR_PAGES_TEXT, ONE_PAGE, upload_of
from workers import pipeline


@pytest.fixture
def api(db):
    return APIClient()


def submit(api, path=FOUR_PAGES, **fields):
    return api.post("/api/v1/conversions", {"file": upload_of(path), **fields}, format="multipart")


def test_upload_and_convert_in_one_call(api):
    response = submit(api, priority=5)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued" and body["priority"] == 5
    assert body["document"]["filename"] == "pdflatex-4-pages.pdf"
    assert body["document"]["page_count"] == 4 and body["pages_total"] == 4
    assert body["engine"] == "auto" and body["prompt_mode"] == "prompt_layout_all_en"
    assert response["Location"] == f"/api/v1/conversions/{body['id']}"


def test_upload_then_convert_in_two_calls(api):
    uploaded = api.post("/api/v1/documents", {"file": upload_of(ONE_PAGE)}, format="multipart")
    assert uploaded.status_code == 201
    document = uploaded.json()
    assert document["page_count"] == 1 and len(document["sha256"]) == 64
    created = api.post("/api/v1/conversions", {"document": document["id"]}, format="json")
    assert created.status_code == 201
    assert created.json()["document"]["id"] == document["id"]


def test_get_conversion_reports_status_progress_pages_and_timestamps(api):
    conversion_id = submit(api).json()["id"]
    pipeline.run_conversion(conversion_id)
    body = api.get(f"/api/v1/conversions/{conversion_id}").json()
    assert body["status"] == "completed"
    assert (body["progress"], body["pages_done"], body["pages_total"]) == (100, 4, 4)
    assert body["created_at"] and body["started_at"] and body["finished_at"]
    assert body["error"] == ""


def test_list_is_paginated_and_filters_by_status(api):
    first = submit(api).json()["id"]
    submit(api)
    pipeline.run_conversion(first)
    everything = api.get("/api/v1/conversions").json()
    assert everything["count"] == 2 and len(everything["results"]) == 2
    completed = api.get("/api/v1/conversions", {"status": "completed"}).json()
    assert [item["id"] for item in completed["results"]] == [first]
    page = api.get("/api/v1/conversions", {"page": 2}).json() if everything["next"] else None
    assert page is None  # two jobs fit on the first page of 50


def test_unknown_status_filter_is_a_400_with_detail(api):
    response = api.get("/api/v1/conversions", {"status": "exploded"})
    assert response.status_code == 400
    assert "status" in response.json()["detail"]


def test_markdown_and_json_results(api):
    conversion_id = submit(api).json()["id"]
    pipeline.run_conversion(conversion_id)
    markdown = api.get(f"/api/v1/conversions/{conversion_id}/markdown")
    assert markdown.status_code == 200
    assert markdown["Content-Type"].startswith("text/markdown")
    assert FOUR_PAGES_TEXT in markdown.content.decode()
    pages = api.get(f"/api/v1/conversions/{conversion_id}/pages").json()
    assert pages["complete"] is True and pages["pages_total"] == 4
    assert [page["page_no"] for page in pages["pages"]] == [0, 1, 2, 3]
    assert {"bbox", "category", "text"} <= set(pages["pages"][0]["cells"][0])


def test_markdown_before_completion_is_a_409(api):
    conversion_id = submit(api).json()["id"]
    response = api.get(f"/api/v1/conversions/{conversion_id}/markdown")
    assert response.status_code == 409
    assert response.json() == {"detail": f"Conversion {conversion_id} is queued; its result is not available."}


@pytest.mark.parametrize("suffix", ["", "/markdown", "/pages"])
def test_unknown_conversion_is_a_404_with_detail(api, suffix):
    missing = uuid.uuid4()
    response = api.get(f"/api/v1/conversions/{missing}{suffix}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"Conversion not found: {missing}"}


def test_malformed_conversion_id_is_a_404(api):
    response = api.get("/api/v1/conversions/not-a-uuid")
    assert response.status_code == 404
    assert response.json() == {"detail": "Conversion not found: not-a-uuid"}


def test_cancel_through_the_api(api):
    conversion_id = submit(api).json()["id"]
    response = api.post(f"/api/v1/conversions/{conversion_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/conversions/{conversion_id}/cancel")
    assert again.status_code == 409
    assert "cannot be cancelled" in again.json()["detail"]


def test_both_file_and_document_is_a_400(api):
    document = api.post("/api/v1/documents", {"file": upload_of(ONE_PAGE)}, format="multipart").json()
    response = submit(api, document=document["id"])
    assert response.status_code == 400
    assert "exactly one" in response.json()["detail"]


def test_neither_file_nor_document_is_a_400(api):
    response = api.post("/api/v1/conversions", {}, format="json")
    assert response.status_code == 400
    assert "exactly one" in response.json()["detail"]


def test_unknown_engine_and_prompt_mode_are_400s(api):
    assert submit(api, engine="gpt-9").status_code == 400
    response = submit(api, prompt_mode="prompt_poetry")
    assert response.status_code == 400 and "prompt_mode" in response.json()["detail"]
    assert Conversion.objects.count() == 0


def test_unknown_document_is_a_404(api):
    missing = uuid.uuid4()
    response = api.post("/api/v1/conversions", {"document": str(missing)}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": f"Document not found: {missing}"}


def test_unknown_route_is_a_json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found: /api/v1/nothing-here"}


def test_health_is_the_original_apps_body(api):
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "service": "Dots OCR API"}


def test_openapi_schema_lists_the_conversion_routes(api):
    response = api.get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/conversions/{conversion_id}" in response.json()["paths"]


def test_uploaded_file_is_stored_under_a_server_chosen_name(api, settings):
    upload = SimpleUploadedFile("../../etc/evil.pdf", ONE_PAGE.read_bytes(), content_type="application/pdf")
    response = api.post("/api/v1/documents", {"file": upload}, format="multipart")
    assert response.status_code == 201
    document = Document.objects.get(pk=response.json()["id"])
    stored = settings.UPLOAD_DIR / document.stored_path.rsplit("/", 1)[-1]
    assert document.stored_path == f"uploads/{stored.name}" and stored.exists()  # a storage key
    assert "evil" not in document.stored_path


def test_retry_a_failed_conversion_keeps_its_pages_and_completes(api):
    from conversions import services
    from workers.ocr.base import PageOcr

    conversion_id = submit(api).json()["id"]
    running = services.claim_conversion(conversion_id=conversion_id, worker_id="w")
    services.checkpoint_page(
        conversion=running,
        page_no=0,
        page=PageOcr(cells=[], engine="first-try"),
        markdown="kept",
        markdown_nohf="kept",
        duration_ms=1,
    )
    services.fail_conversion(conversion=running, error="Page 2: engine down")
    retried = api.post(f"/api/v1/conversions/{conversion_id}/retry")
    assert retried.status_code == 200
    assert retried.json()["status"] == "queued" and retried.json()["error"] == ""
    assert pipeline.run_conversion(conversion_id) == "completed"
    done = Conversion.objects.get(pk=conversion_id)
    assert done.pages.get(page_no=0).engine == "first-try" and done.pages.count() == 4


def test_retry_of_a_queued_conversion_is_a_409(api):
    conversion_id = submit(api).json()["id"]
    response = api.post(f"/api/v1/conversions/{conversion_id}/retry")
    assert response.status_code == 409 and "only failed or cancelled" in response.json()["detail"]


def test_patch_priority_of_a_waiting_job_and_not_of_a_finished_one(api):
    conversion_id = submit(api).json()["id"]
    response = api.patch(f"/api/v1/conversions/{conversion_id}", {"priority": 42}, format="json")
    assert response.status_code == 200 and response.json()["priority"] == 42
    assert api.patch(f"/api/v1/conversions/{conversion_id}", {"priority": "high"}, format="json").status_code == 400
    pipeline.run_conversion(conversion_id)
    late = api.patch(f"/api/v1/conversions/{conversion_id}", {"priority": 1}, format="json")
    assert late.status_code == 409 and Conversion.objects.get(pk=conversion_id).priority == 42
