"""Bad uploads get a 4xx with a readable detail, and nothing is left behind; hostile
file names are made safe; a body that cannot be parsed is a 4xx on every JSON route."""

import io
import random
import re
import zipfile

import pymupdf
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from conversions import services
from conversions.models import Conversion, Document
from tests.conftest import ENCRYPTED, FOUR_PAGES, ONE_PAGE, published, truncated_pdf
from workers import pipeline
from workers.outputs import MAX_NAME_CHARS, display_name, safe_stem


def png_bytes() -> bytes:
    picture = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 32, 32), False)
    picture.clear_with(200)
    return picture.tobytes("png")


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("notes.txt", "Quarterly figures, see attachment.\n" * 200)
    return buffer.getvalue()


UNSUPPORTED = "Unsupported file type"
# Images, Office and text files are inputs too (tests/test_inputs.py); what is none of
# them, or is one only in its first bytes, is refused.
BAD_UPLOADS = {
    "GIF header, no image": (b"GIF89a this is an image pretending to be a pdf" * 20, 400, "GIF image cannot be read"),
    "PNG signature, no image": (png_bytes()[:8] + b"\0" * 64, 415, UNSUPPORTED),
    "ZIP archive": (zip_bytes(), 415, UNSUPPORTED),
    "random bytes": (random.Random(7).randbytes(64 * 1024).replace(b"%PDF-", b"%PDX-"), 415, UNSUPPORTED),
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


# --- hostile file names ------------------------------------------------------------------


def multipart_with_filename(disposition_name: bytes, content: bytes) -> bytes:
    """A multipart body written by hand: test clients cannot send arbitrary name bytes."""
    return (
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; '
        + disposition_name
        + b"\r\nContent-Type: application/pdf\r\n\r\n"
        + content
        + b"\r\n--BOUNDARY--\r\n"
    )


def post_named(route: str, disposition_name: bytes):
    body = multipart_with_filename(disposition_name, ONE_PAGE.read_bytes())
    return Client().generic("POST", route, body, content_type="multipart/form-data; boundary=BOUNDARY")


SAFE_STEM = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")
# Django refuses multipart headers past 1 KB (below); its uploads keep 255 characters.
LONG_NAME = "n" * 900 + ".pdf"
ACCEPTED_NAMES = {  # the Content-Disposition parameter -> the name shown and stored
    "path traversal": (b'filename="../../etc/passwd.pdf"', "passwd.pdf"),
    "windows traversal": (b'filename="..\\..\\windows\\evil.pdf"', "evil.pdf"),
    "NUL": (b'filename="a\x00b.pdf"', "ab.pdf"),
    "control characters": (b'filename="bell\x07\x1b[31mred\x7f.pdf"', "bell[31mred.pdf"),
    "900 characters long": (b'filename="' + LONG_NAME.encode() + b'"', "n" * (MAX_NAME_CHARS - 4) + ".pdf"),
    "undecodable RFC 2231 escapes": (b"filename*=UTF-8''%FF%FEbad.pdf", "\ufffd\ufffdbad.pdf"),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED_NAMES))
def test_hostile_file_name_is_stored_and_shown_safely(db, settings, case):
    disposition, shown = ACCEPTED_NAMES[case]
    response = post_named("/api/v1/documents", disposition)
    assert response.status_code == 201, response.content
    assert response.json()["filename"] == shown
    document = Document.objects.get()
    assert document.filename == shown and SAFE_STEM.fullmatch(document.stem)
    stored = settings.UPLOAD_DIR / document.stored_path.rsplit("/", 1)[-1]
    assert f"uploads/{stored.name}" == document.stored_path and stored.is_file()  # a server-chosen name in UPLOAD_DIR


REFUSED_NAMES = {
    # Django's multipart parser refuses part headers past 1 KB before any view runs.
    "10 KB long": (
        b'filename="' + b"n" * 10240 + b'.pdf"',
        "Multipart form parse error - Request max total header size exceeded.",
    ),
    # Django's multipart parser drops a part whose name is not UTF-8 (the reason names the field).
    "not UTF-8": (b'filename="caf\xe9 \xff\xfe.pdf"', "file: No file was submitted."),
}


@pytest.mark.parametrize("route", ["/api/v1/documents", "/upload"])
@pytest.mark.parametrize("case", sorted(REFUSED_NAMES))
def test_unreadable_file_name_is_a_400_with_a_reason(db, settings, route, case):
    disposition, detail = REFUSED_NAMES[case]
    response = post_named(route, disposition)
    assert response.status_code == 400
    assert response.json()["detail"] == detail
    assert Document.objects.count() == 0 and list(settings.UPLOAD_DIR.iterdir()) == []


SERVICE_NAMES = {  # names that reach the service without Django's multipart clean-up (CLI, admin)
    "a\x00b.pdf": "ab.pdf",
    "..\\..\\evil.pdf": "evil.pdf",
    b"caf\xe9.pdf".decode("utf-8", "surrogateescape"): "caf.pdf",
    "\x1b[2Jclear\x85.pdf": "[2Jclear.pdf",
    "\u202egnp.pdf": "gnp.pdf",
}


@pytest.mark.parametrize("name", list(SERVICE_NAMES), ids=ascii)
def test_service_stores_a_printable_display_name(owner, settings, name):
    document = services.create_document(
        owner=owner, upload=SimpleUploadedFile(name, ONE_PAGE.read_bytes()), max_pages=settings.MAX_PAGES
    )
    document.refresh_from_db()
    assert document.filename == SERVICE_NAMES[name]


def test_outputs_of_a_hostile_name_stay_in_the_output_folders(owner, settings):
    name = "..\\..\\..\\tmp\\ünï cödé\x00.pdf"
    document = services.create_document(
        owner=owner, upload=SimpleUploadedFile(name, FOUR_PAGES.read_bytes()), max_pages=settings.MAX_PAGES
    )
    conversion = services.create_conversion(document=document, owner=owner, engine="textlayer")
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    conversion.refresh_from_db()
    assert document.filename == "ünï cödé.pdf" and document.stem == "n_c_d"
    output_dir = settings.OUTPUT_DIR.resolve()
    written = [path for path in output_dir.rglob("*") if path.is_file()]
    assert written and all(path.name.startswith("n_c_d") for path in written)
    assert {path.parent for path in written} == {published(conversion).resolve()}
    assert sorted(link.name for link in settings.OUTPUT_BY_STEM_DIR.iterdir()) == ["n_c_d", "n_c_d.jsonl"]
    assert all(link.resolve().is_relative_to(output_dir) for link in settings.OUTPUT_BY_STEM_DIR.iterdir())


client_names = st.one_of(
    st.text(max_size=400), st.binary(max_size=400).map(lambda raw: raw.decode("utf-8", "surrogateescape"))
)


@hypothesis_settings(max_examples=300, deadline=None, database=None)
@given(client_names)
def test_any_client_name_becomes_a_printable_display_name_and_a_file_system_safe_stem(name):
    shown = display_name(name)
    assert 0 < len(shown) <= MAX_NAME_CHARS and shown.isprintable()
    assert "/" not in shown and "\\" not in shown and shown not in (".", "..")
    shown.encode("utf-8")  # storable: no lone surrogates
    stem = safe_stem(shown)
    assert SAFE_STEM.fullmatch(stem) and stem not in (".", "..")


# --- bodies that cannot be parsed, on every route that takes JSON ---------------------------

# Every operation of the OpenAPI schema with an application/json request body (checked
# against the served schema below), with the path it is called on.
JSON_ROUTES = {
    ("post", "/api/v1/conversions"): "/api/v1/conversions",
    ("post", "/api/v1/batches"): "/api/v1/batches",
    ("patch", "/api/v1/conversions/{conversion_id}"): "/api/v1/conversions/{conversion_id}",
    ("post", "/convert"): "/convert",
    ("post", "/convert-doc"): "/convert-doc",
    ("post", "/upload"): "/upload",
    ("put", "/markdown/{stem}"): "/markdown/{stem}",
    ("post", "/api/v1/auth/token"): "/api/v1/auth/token",
}
UNPARSEABLE_BODIES = {
    "malformed": (
        b"{not json",
        400,
        "JSON parse error - Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
    ),
    "cut short": (b'{"priority": ', 400, "JSON parse error - Expecting value: line 1 column 14 (char 13)"),
    "not UTF-8": (
        b'{"filename": "caf\xe9.pdf"}',
        400,
        "JSON parse error - 'utf-8' codec can't decode byte 0xe9 in position 17: invalid continuation byte",
    ),
    "nested 100,000 deep": (b"[" * 100_000, 400, "The request body cannot be parsed: it is nested too deeply."),
    "larger than DATA_UPLOAD_MAX_MEMORY_SIZE": (
        b'{"content": "' + b"x" * (3 * 1024 * 1024) + b'"}',
        413,
        "The request body is larger than the 2.5 MB limit for non-file data.",
    ),
    "a number, not an object": (b"5", 400, None),
    "a list, not an object": (b"[1, 2]", 400, None),
}


def test_json_routes_are_every_operation_with_a_json_body(db):
    schema = Client().get("/api/v1/schema?format=json").json()
    with_json_body = {
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    }
    assert with_json_body == set(JSON_ROUTES)


@pytest.fixture
def completed(owner, settings):
    """A completed conversion, so routes that look one up reach their body."""
    document = services.create_document(
        owner=owner, upload=SimpleUploadedFile("report.pdf", ONE_PAGE.read_bytes()), max_pages=settings.MAX_PAGES
    )
    conversion = services.create_conversion(document=document, owner=owner, engine="textlayer")
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    return conversion


@pytest.mark.parametrize("route", sorted(JSON_ROUTES), ids="{0[0]} {0[1]}".format)
@pytest.mark.parametrize("body", sorted(UNPARSEABLE_BODIES))
def test_unparseable_json_body_is_a_4xx_with_a_detail(completed, route, body):
    method, _ = route
    url = JSON_ROUTES[route].format(conversion_id=completed.pk, stem=completed.document.stem)
    content, status, detail = UNPARSEABLE_BODIES[body]
    response = Client().generic(method.upper(), url, content, content_type="application/json")
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    if detail is None:
        assert response.json()["detail"].startswith("Invalid data. Expected a dictionary, but got ")
    else:
        assert response.json()["detail"] == detail


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_routes_without_a_body_ignore_a_malformed_one(completed, action):
    # cancel and retry take no request body (the schema says so): what is sent is not read.
    url = f"/api/v1/conversions/{completed.pk}/{action}"
    plain = Client().post(url)
    malformed = Client().generic("POST", url, b"{not json", content_type="application/json")
    assert malformed.status_code == plain.status_code == 409
    assert malformed.json() == plain.json()


@pytest.mark.parametrize("filename,status", [([None, None], 400), ({"a": 1}, 400), (5, 404)], ids=str)
def test_convert_with_a_filename_that_is_not_a_string_is_a_4xx(db, filename, status):
    # Found by tests/test_fuzz_api.py: the name check ran before the field was validated.
    response = APIClient().post("/convert", {"filename": filename}, format="json")
    assert response.status_code == status
    assert response.json()["detail"]
