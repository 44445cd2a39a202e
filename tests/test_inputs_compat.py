"""New input types on the original app's routes (issue 14, parts 3 and 4), the CLI and
the upload page; jobs run in-process here (tests/test_inputs_live.py: real processes)."""

from io import BytesIO, StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from PIL import Image
from rest_framework.test import APIClient

from conversions.models import Conversion
from tests.input_files import corrupt_docx_bytes, docx_bytes, image_bytes
from workers import pipeline

CONVERT_ANSWER_KEYS = {"status", "conversion_id", "filename", "message", "queue_size", "active_tasks"}


@pytest.fixture
def api(db, settings):
    settings.DOTSOCR_CONFIGURED = False
    return APIClient()


def upload(api, name: str, content: bytes) -> dict:
    answer = api.post("/upload", {"file": SimpleUploadedFile(name, content)}, format="multipart")
    assert answer.status_code == 200, answer.json()
    return answer.json()


def run(conversion_id: str) -> dict:
    pipeline.run_conversion(conversion_id)
    return Client().get(f"/conversion-status/{conversion_id}").json()


@pytest.mark.parametrize("name,image_format", [("receipt.png", "PNG"), ("photo.jpg", "JPEG")])
def test_an_image_uploads_converts_and_reads_through_the_original_routes(api, name, image_format):
    assert upload(api, name, image_bytes("Receipt total 3150", image_format))["filename"] == name
    started = api.post("/convert", {"filename": name}, format="multipart").json()
    assert started["status"] == "accepted" and set(started) == CONVERT_ANSWER_KEYS
    assert run(started["conversion_id"])["status"] == "completed"

    stem = name.rsplit(".", 1)[0]  # as the original's Path(name).stem
    listed = api.get(f"/markdown-files/{stem}")
    assert listed.status_code == 200
    pages = [entry for entry in listed.json()["markdown_files"] if entry["page_no"] is not None]
    assert [entry["page_no"] for entry in pages] == [0]
    assert pages[0]["filename"] == f"{stem}_page_0_nohf.md"
    page = api.get(f"/markdown/{stem}", {"page_no": 0}).json()["content"]
    assert all(word in page for word in ("Receipt", "total", "3150"))
    image = api.get(f"/image/{stem}", {"page_no": 0})
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert Image.open(BytesIO(b"".join(image.streaming_content))).size == (900, 160)


def test_convert_doc_converts_a_docx_and_answers_like_convert(api):
    content = docx_bytes(
        heading="Meeting Minutes",
        paragraph="The board approved the budget.",
        cells=[["Item", "Owner"], ["Budget", "Dana"]],
    )
    upload(api, "minutes.docx", content)
    documents = api.get("/documents").json()["documents"]  # page count unknown until converted
    assert [(record["filename"], record["is_multipage"]) for record in documents] == [("minutes.docx", False)]
    started = api.post("/convert-doc", {"filename": "minutes.docx"}, format="multipart")
    assert started.status_code == 200
    body = started.json()
    assert body["status"] == "accepted" and set(body) == CONVERT_ANSWER_KEYS and body["filename"] == "minutes.docx"
    assert body["message"] == "Conversion task started. Use WebSocket to track progress."
    final = run(body["conversion_id"])
    assert final["status"] == "completed" and final["progress"] == 100
    whole = api.get("/markdown/minutes").json()["content"]
    for text in ("Meeting Minutes", "The board approved the budget.", "Item", "Owner", "Budget", "Dana"):
        assert text in whole
    assert api.get("/image/minutes", {"page_no": 0})["Content-Type"] == "image/jpeg"


def test_convert_doc_of_an_unknown_file_is_a_404_like_convert(api):
    for route in ("/convert", "/convert-doc"):
        answer = api.post(route, {"filename": "never-uploaded.docx"}, format="multipart")
        assert answer.status_code == 404 and "detail" in answer.json()


def test_convert_doc_of_a_corrupt_document_ends_in_error_with_the_reason(api):
    upload(api, "broken.docx", corrupt_docx_bytes())
    conversion_id = api.post("/convert-doc", {"filename": "broken.docx"}, format="multipart").json()["conversion_id"]
    final = run(conversion_id)
    assert (
        final["status"] == "error"
        and "LibreOffice could not read the file" in Conversion.objects.get(pk=conversion_id).error
    )


def test_the_cli_converts_an_image_and_a_text_file(db, settings, tmp_path):
    settings.DOTSOCR_CONFIGURED = False
    picture = tmp_path / "label.webp"
    picture.write_bytes(image_bytes("Shipping label", "WEBP", lossless=True))
    notes = tmp_path / "notes.txt"
    notes.write_text("Notes for the command line.\n")
    out = StringIO()
    call_command("convert", str(picture), str(notes), "--sync", stdout=out, stderr=StringIO())
    assert out.getvalue().count("completed -> ") == 2
    texts = {c.document.filename: c.pages.get().markdown for c in Conversion.objects.select_related("document")}
    assert "Shipping" in texts["label.webp"] and "Notes for the command line." in texts["notes.txt"]


def test_the_upload_page_offers_every_accepted_type(api):
    upload(api, "agenda.docx", docx_bytes(heading="Agenda", paragraph="Items.", cells=[["1"]]))
    page = Client().get("/", HTTP_ACCEPT="text/html").content.decode()
    assert "<td>agenda.docx</td><td>?</td>" in page  # its page count is not known before conversion
    accept = page.split('id="file-input"', 1)[1].split('accept="', 1)[1].split('"', 1)[0]
    for item in (
        "application/pdf",
        ".pdf",
        "image/png",
        ".jpg",
        ".jpeg",
        ".tif",
        ".webp",
        ".bmp",
        ".gif",
        ".docx",
        ".doc",
        ".odt",
        ".rtf",
        ".pptx",
        ".ppt",
        ".odp",
        ".xlsx",
        ".xls",
        ".ods",
        ".txt",
        ".csv",
        ".html",
        ".md",
    ):
        assert item in accept.split(","), item
