"""Contract tests of the original app's routes (reference/original-api.md)."""

import uuid
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from conversions.models import Conversion, Document
from tests.conftest import FOUR_PAGES, FOUR_PAGES_TEXT, ONE_PAGE, stored
from workers import pipeline


@pytest.fixture
def client(db):
    return APIClient()


def upload(client, path=FOUR_PAGES, name=None):
    file = SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="application/pdf")
    return client.post("/upload", {"file": file}, format="multipart")


def convert(client, filename="pdflatex-4-pages.pdf", **fields):
    return client.post("/convert", {"filename": filename, **fields}, format="multipart")


@pytest.fixture
def converted(client):
    upload(client)
    conversion_id = convert(client).json()["conversion_id"]
    pipeline.run_conversion(conversion_id)
    return conversion_id


def assert_types(body: dict, types: dict):
    assert set(body) == set(types), set(body) ^ set(types)
    for field, kind in types.items():
        assert isinstance(body[field], kind), (field, body[field])


def test_root_and_health(client):
    assert isinstance(client.get("/").json()["message"], str)
    assert client.get("/health").json() == {"status": "healthy", "service": "Dots OCR API"}


def test_config_has_frontend_and_ocr_settings(client):
    body = client.get("/config").json()
    for field in ("basePath", "appDomain", "apiDomain", "iamDomain", "clientId", "iamScope"):
        assert isinstance(body[field], str)
    assert body["vllm_port"] == 8001 and body["temperature"] == 0.1 and body["top_p"] == 1.0
    assert body["max_completion_tokens"] == 16384 and body["dpi"] == 200
    for field in ("vllm_ip", "model_name", "output_dir"):
        assert isinstance(body[field], str)
    for field in ("num_thread", "min_pixels", "max_pixels"):
        assert isinstance(body[field], int)


def test_upload_answers_the_original_record(client):
    response = upload(client)
    assert response.status_code == 200
    assert_types(
        response.json(), {"status": str, "filename": str, "file_path": str, "file_size": int, "upload_time": str}
    )
    assert response.json()["status"] == "success" and response.json()["file_size"] == FOUR_PAGES.stat().st_size


# Django's multipart parser already cuts a name to its last path component ("../a.pdf"
# arrives as "a.pdf"); what survives that is checked here.
@pytest.mark.parametrize("name", ["..pdf", "x..y.pdf"])
def test_upload_refuses_path_like_names(client, name):
    response = upload(client, name=name)
    assert response.status_code == 400 and response.json() == {"detail": "Invalid filename"}
    assert Document.objects.count() == 0


def test_documents_lists_latest_upload_of_each_name(client, converted):
    upload(client, ONE_PAGE)
    upload(client)  # a second upload of the same name replaces the first in the list
    body = client.get("/documents").json()
    assert body["status"] == "success" and body["total"] == 2
    first = body["documents"][0]
    assert_types(
        first,
        {
            "filename": str,
            "file_path": str,
            "file_size": int,
            "upload_time": str,
            "markdown_exists": bool,
            "markdown_path": str,
            "is_multipage": bool,
        },
    )
    assert first["filename"] == "pdflatex-4-pages.pdf" and first["markdown_exists"] and first["is_multipage"]
    assert first["markdown_path"].endswith("pdflatex-4-pages_nohf.md")
    assert body["documents"][1]["markdown_exists"] is False and body["documents"][1]["markdown_path"] is None


def test_documents_list_reads_a_constant_number_of_queries(client, converted):
    """One query for the documents and one for their latest outputs, however many."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_the_list() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/documents").status_code == 200
        return len(queries.captured_queries)

    few = queries_for_the_list()
    for number in range(5):
        upload(client, ONE_PAGE, name=f"other-{number}.pdf")
        pipeline.run_conversion(convert(client, filename=f"other-{number}.pdf").json()["conversion_id"])
    assert client.get("/documents").json()["total"] == 6
    assert queries_for_the_list() == few


def test_convert_answers_at_once_with_exact_queue_counts(client):
    upload(client)
    first = convert(client)
    assert first.status_code == 200
    body = first.json()
    assert_types(
        body,
        {"status": str, "conversion_id": str, "filename": str, "message": str, "queue_size": int, "active_tasks": int},
    )
    assert body["status"] == "accepted" and body["queue_size"] == 1 and body["active_tasks"] == 0
    assert body["message"] == "Conversion task started. Use WebSocket to track progress."
    assert convert(client, prompt_mode="prompt_ocr", priority=3).json()["queue_size"] == 2
    assert Conversion.objects.get(pk=convert(client, priority=7).json()["conversion_id"]).priority == 7


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b.pdf", "a\\b.pdf", "nul\x00.pdf", "bell\x07.pdf"])
def test_convert_refuses_path_like_names(client, name):
    response = convert(client, name)
    assert response.status_code == 400 and response.json() == {"detail": "Invalid filename"}


def test_convert_of_a_missing_file_is_a_404(client):
    missing = convert(client, "nothing.pdf")
    assert missing.status_code == 404 and missing.json() == {"detail": "File not found: nothing.pdf"}


def test_conversion_status_record_and_404(client, converted):
    body = client.get(f"/conversion-status/{converted}").json()
    assert_types(
        body,
        {
            "id": str,
            "filename": str,
            "status": str,
            "progress": int,
            "message": str,
            "created_at": str,
            "started_at": str,
            "completed_at": str,
            "error": type(None),
        },
    )
    assert body["status"] == "completed" and body["progress"] == 100
    missing = uuid.uuid4()
    response = client.get(f"/conversion-status/{missing}")
    assert response.status_code == 404 and response.json() == {"detail": f"Conversion not found: {missing}"}


def test_status_strings_are_the_originals(client):
    upload(client)
    conversion_id = convert(client).json()["conversion_id"]
    assert client.get(f"/conversion-status/{conversion_id}").json()["status"] == "pending"
    client.post(f"/api/v1/conversions/{conversion_id}/cancel")
    body = client.get(f"/conversion-status/{conversion_id}").json()
    assert body["status"] == "error" and body["error"] == "Conversion cancelled"


def test_worker_pool_status(client):
    upload(client)
    convert(client)
    body = client.get("/worker-pool-status").json()
    assert_types(body, {"status": str, "queue_size": int, "active_tasks": int, "num_workers": int})
    assert body["status"] == "ok" and body["queue_size"] == 1 and body["active_tasks"] == 0


def test_markdown_files_lists_only_the_pages_in_order(client, converted):
    """The original made no whole-document file for a PDF; its viewer saves the i-th
    listed entry to page i (tests/test_compat_viewer.py)."""
    body = client.get("/markdown-files/pdflatex-4-pages").json()
    assert body["status"] == "success" and body["filename"] == "pdflatex-4-pages" and body["total"] == 4
    files = body["markdown_files"]
    assert [entry["page_no"] for entry in files] == [0, 1, 2, 3]
    assert [entry["filename"] for entry in files] == [f"pdflatex-4-pages_page_{n}_nohf.md" for n in range(4)]
    assert all(entry["is_multipage"] and Path(entry["path"]).is_file() for entry in files)
    missing = client.get("/markdown-files/nothing")
    assert missing.status_code == 404 and missing.json() == {"detail": "No markdown files found for: nothing"}


def test_markdown_get_and_put_keep_the_models_text(client, converted):
    whole = client.get("/markdown/pdflatex-4-pages").json()
    assert whole["page_no"] is None and FOUR_PAGES_TEXT in whole["content"]
    page = client.get("/markdown/pdflatex-4-pages", {"page_no": 1}).json()
    assert page == {"status": "success", "filename": "pdflatex-4-pages", "page_no": 1, "content": page["content"]}

    saved = client.put("/markdown/pdflatex-4-pages?page_no=1", {"content": "# Edited"}, format="json")
    assert saved.json() == {
        "status": "success",
        "filename": "pdflatex-4-pages",
        "page_no": 1,
        "message": "Markdown content updated successfully",
    }
    assert client.get("/markdown/pdflatex-4-pages", {"page_no": 1}).json()["content"] == "# Edited"
    assert "# Edited" in client.get("/markdown/pdflatex-4-pages").json()["content"]
    assert FOUR_PAGES_TEXT in Conversion.objects.get(pk=converted).pages.get(page_no=1).markdown_nohf
    assert client.get("/markdown/pdflatex-4-pages", {"page_no": 9}).status_code == 404


def test_image_serves_page_jpegs(client, converted):
    first = client.get("/image/pdflatex-4-pages")
    assert first.status_code == 200 and first["Content-Type"] == "image/jpeg"
    assert b"".join(first.streaming_content)[:2] == b"\xff\xd8"
    assert client.get("/image/pdflatex-4-pages", {"page_no": 3}).status_code == 200
    assert client.get("/image/pdflatex-4-pages", {"page_no": 4}).status_code == 404


@pytest.mark.django_db(transaction=True)  # files go only after the deletion commits
def test_delete_removes_upload_outputs_and_conversions(client, converted, settings):
    conversion = Conversion.objects.get(pk=converted)
    upload, output = conversion.document.stored_path, conversion.output_dir
    response = client.delete("/documents/pdflatex-4-pages.pdf")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success" and set(body["deleted_files"]) == {upload, output}
    assert body["message"] == "Deleted 2 file(s)/folder(s)"
    assert Conversion.objects.count() == 0 and Document.objects.count() == 0
    assert upload and output and not stored(upload).exists() and not stored(output).exists()
    assert not (settings.OUTPUT_BY_STEM_DIR / "pdflatex-4-pages").is_symlink()
    again = client.delete("/documents/pdflatex-4-pages.pdf")
    assert again.status_code == 404 and again.json() == {"detail": "File not found: pdflatex-4-pages.pdf"}


def test_delete_is_refused_while_a_conversion_runs(client):
    from conversions import services

    upload(client)
    conversion_id = convert(client).json()["conversion_id"]
    services.claim_conversion(conversion_id=conversion_id, worker_id="w")
    response = client.delete("/documents/pdflatex-4-pages.pdf")
    assert response.status_code == 409 and "cancel" in response.json()["detail"]
    assert Document.objects.count() == 1


@pytest.mark.parametrize("name", ["../x.pdf", "a/b.pdf"])
def test_delete_refuses_path_like_names(client, name):
    response = client.delete(f"/documents/{name}")
    assert response.status_code == 400 and response.json() == {"detail": "Invalid filename"}


def test_cors_allows_the_original_frontends_headers(client):
    response = client.options(
        "/convert",
        HTTP_ORIGIN="http://localhost:3000",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,currentlanguage",
    )
    assert response["Access-Control-Allow-Origin"] in ("*", "http://localhost:3000")
    allowed = response["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "currentlanguage" in allowed


def test_unrecognised_authorization_header_is_ignored(client):
    client.credentials(HTTP_AUTHORIZATION="Bearer temporary-dev-token", HTTP_CURRENTLANGUAGE="en")
    assert client.get("/worker-pool-status").status_code == 200
    assert upload(client).status_code == 200
