"""Images, Office and text documents as inputs: detected from their bytes, converted by the
worker through the same pipeline as a PDF (in-process here, real LibreOffice and OCR)."""

import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from conversions.models import Conversion, Document
from tests.conftest import published, stored
from tests.input_files import (
    corrupt_docx_bytes,
    docx_bytes,
    image_bomb,
    image_bytes,
    multi_frame_bytes,
    pptx_bytes,
    reordered_zip,
    sideways_jpeg,
    xlsx_bytes,
)
from workers import pipeline

DOCX_CELLS = [["Fruit", "Quantity"], ["Apples", "1234"], ["Pears", "5678"]]


@pytest.fixture
def api(db, settings):
    settings.DOTSOCR_CONFIGURED = False  # `auto`: text layer for Office pages, rapidocr for images
    return APIClient()


def submit(api, name: str, content: bytes, route: str = "/api/v1/conversions"):
    return api.post(
        route, {"file": SimpleUploadedFile(name, content, content_type="application/octet-stream")}, format="multipart"
    )


def convert(api, name: str, content: bytes) -> Conversion:
    answer = submit(api, name, content)
    assert answer.status_code == 201, answer.json()
    pipeline.run_conversion(answer.json()["id"])
    return Conversion.objects.select_related("document").get(pk=answer.json()["id"])


def markdown_of(api, conversion: Conversion) -> str:
    """The document's Markdown, whitespace collapsed: OCR may split a line into cells."""
    answer = api.get(f"/api/v1/conversions/{conversion.pk}/markdown")
    assert answer.status_code == 200
    return " ".join(answer.content.decode().split())


def reads(markdown: str, text: str) -> bool:
    """Every word of ``text`` is in ``markdown``: OCR may cut one line into several cells
    at other places than the spaces (rapidocr: "Charlie chapter" -> "Charlie", "e chapter")."""
    return all(word in markdown for word in text.split())


def completed(conversion: Conversion) -> Conversion:
    assert conversion.status == "completed", conversion.error
    return conversion


# --- images -------------------------------------------------------------------------------

IMAGE_CASES = {  # format -> (file name, content type recorded, save options)
    "PNG": ("scan.png", "image/png", {}),
    "JPEG": ("photo.jpg", "image/jpeg", {"quality": 92}),
    "WEBP": ("picture.webp", "image/webp", {"lossless": True}),
    "BMP": ("bitmap.bmp", "image/bmp", {}),
    "GIF": ("drawing.gif", "image/gif", {}),
    "TIFF": ("fax.tif", "image/tiff", {"compression": "tiff_lzw"}),
}


@pytest.mark.parametrize("image_format", sorted(IMAGE_CASES))
def test_an_image_converts_as_one_page_and_ocr_reads_its_text(api, settings, image_format):
    name, content_type, options = IMAGE_CASES[image_format]
    conversion = completed(convert(api, name, image_bytes(f"Invoice 4217 {image_format}", image_format, **options)))
    document = conversion.document
    assert (document.kind, document.content_type, document.page_count) == ("image", content_type, 1)
    assert stored(document.stored_path).suffix == os.path.splitext(name)[1]
    assert (conversion.pages_total, conversion.pages_done) == (1, 1)
    assert conversion.pages.get().engine == "rapidocr"
    assert reads(markdown_of(api, conversion), f"Invoice 4217 {image_format}")
    # The page image is the picture at its own resolution (the page was sized for the render DPI).
    page_image = published(conversion) / f"{document.stem}_page_0.jpg"
    assert Image.open(page_image).size == (900, 160)


def test_every_frame_of_a_multi_page_tiff_is_a_page(api):
    texts = ["Alpha chapter", "Bravo chapter", "Charlie chapter"]
    conversion = completed(convert(api, "pages.tiff", multi_frame_bytes(texts, "TIFF")))
    assert conversion.document.page_count == 3 and conversion.pages_total == 3
    pages = {page.page_no: " ".join(page.markdown.split()) for page in conversion.pages.all()}
    for page_no, text in enumerate(texts):
        assert reads(pages[page_no], text)
    whole = markdown_of(api, conversion)
    assert whole.index("Alpha") < whole.index("Bravo") < whole.index("Charlie")


def test_an_animated_gif_gives_its_first_frame(api):
    frames = multi_frame_bytes(["First frame 1010", "Second frame 2020"], "GIF")
    conversion = completed(convert(api, "moving.gif", frames))
    assert conversion.document.page_count == 1 and conversion.pages_total == 1
    markdown = markdown_of(api, conversion)
    assert reads(markdown, "First frame 1010") and "Second" not in markdown


def test_a_photo_with_exif_orientation_6_reads_upright(api, settings):
    conversion = completed(convert(api, "phone.jpg", sideways_jpeg("Upright words 8642")))
    page_image = published(conversion) / f"{conversion.document.stem}_page_0.jpg"
    assert Image.open(page_image).size == (900, 160)  # stored 160 x 900, turned as EXIF says
    assert reads(markdown_of(api, conversion), "Upright words 8642")


def test_the_type_comes_from_the_bytes_not_the_name(api):
    answer = submit(api, "report.pdf", image_bytes("Named wrongly", "PNG"))
    assert answer.status_code == 201
    assert Document.objects.get().content_type == "image/png"
    assert stored(Document.objects.get().stored_path).suffix == ".png"


def test_an_image_bomb_is_refused_at_upload_with_a_reason(api, settings):
    answer = submit(api, "bomb.png", image_bomb())
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert "20000 x 20000" in detail and "decompression bomb" in detail and "MAX_IMAGE_PIXELS" in detail
    assert Document.objects.count() == 0 and list(settings.UPLOAD_DIR.iterdir()) == []


def test_the_pixel_cap_is_a_setting(api, settings):
    settings.MAX_IMAGE_PIXELS = 900 * 160 - 1
    answer = submit(api, "scan.png", image_bytes("Just too large", "PNG"))
    assert answer.status_code == 400 and "MAX_IMAGE_PIXELS" in answer.json()["detail"]
    settings.MAX_IMAGE_PIXELS = 900 * 160
    assert submit(api, "scan.png", image_bytes("Just small enough", "PNG")).status_code == 201


def test_a_tiff_with_more_frames_than_max_pages_is_a_413(api, settings):
    settings.MAX_PAGES = 2
    answer = submit(api, "long.tif", multi_frame_bytes(["one", "two", "three"], "TIFF"))
    assert answer.status_code == 413
    assert answer.json() == {"detail": "The TIFF image has 3 pages; the limit is 2."}


def test_a_damaged_image_is_refused_with_a_reason(api):
    content = image_bytes("Cut short", "PNG")
    answer = submit(api, "cut.png", content[:200])
    assert answer.status_code in (201, 400)
    if answer.status_code == 400:  # the header already shows the damage
        assert "PNG image cannot be read" in answer.json()["detail"]
    else:  # found when the worker decodes the pixels: the job fails with the reason
        pipeline.run_conversion(answer.json()["id"])
        failed = Conversion.objects.get(pk=answer.json()["id"])
        assert failed.status == "failed" and "image cannot be read" in failed.error


# --- unsupported types --------------------------------------------------------------------

UNSUPPORTED = {
    "ZIP archive": ("archive.zip", None),
    "random bytes": ("data.bin", bytes(range(256)) * 64),
    "SVG": ("drawing.svg", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
}


@pytest.mark.parametrize("route", ["/api/v1/conversions", "/api/v1/documents", "/upload"])
@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_an_unsupported_type_is_a_415_naming_the_supported_ones(api, settings, route, case):
    import io
    import zipfile

    name, content = UNSUPPORTED[case]
    if content is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("notes.bin", b"\x00" * 100)
        content = buffer.getvalue()
    answer = submit(api, name, content, route=route)
    assert answer.status_code == 415
    detail = answer.json()["detail"]
    assert detail.startswith("Unsupported file type (")
    for label in ("PDF", "PNG", "JPEG", "TIFF", "DOCX", "XLSX", "PPTX", "TXT", "CSV", "HTML", "Markdown"):
        assert label in detail
    assert Document.objects.count() == 0 and list(settings.UPLOAD_DIR.iterdir()) == []


# --- Office and text documents --------------------------------------------------------------


def test_a_docx_converts_with_its_heading_paragraph_and_table(api):
    content = docx_bytes(
        heading="Quarterly Report", paragraph="Sales grew in every region this quarter.", cells=DOCX_CELLS
    )
    answer = submit(api, "report.docx", content)
    assert answer.status_code == 201
    document = Document.objects.get()
    assert document.kind == "office" and document.page_count is None  # known once converted
    assert document.content_type == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert answer.json()["pages_total"] is None
    described = api.get(f"/api/v1/documents/{document.pk}").json()
    assert (described["kind"], described["page_count"]) == ("office", None)
    pipeline.run_conversion(answer.json()["id"])
    conversion = completed(Conversion.objects.get(pk=answer.json()["id"]))
    document.refresh_from_db()
    assert document.page_count == 1 and conversion.pages_total == 1
    assert conversion.pages.get().engine.startswith("textlayer")
    markdown = markdown_of(api, conversion)
    assert "Quarterly Report" in markdown and "Sales grew in every region this quarter." in markdown
    for value in sum(DOCX_CELLS, []):
        assert value in markdown


def test_a_docx_whose_parts_are_in_another_order_is_still_a_docx(api):
    content = reordered_zip(docx_bytes(heading="Reordered", paragraph="Parts backwards.", cells=[["a", "b"]]))
    conversion = completed(convert(api, "backwards.docx", content))
    assert conversion.document.content_type.endswith("wordprocessingml.document")
    assert "Parts backwards." in markdown_of(api, conversion)


def test_an_xlsx_converts_with_its_cells(api):
    rows = [["Region", "Revenue"], ["North", 4711], ["South", 815]]
    conversion = completed(convert(api, "figures.xlsx", xlsx_bytes(rows)))
    assert conversion.document.content_type.endswith("spreadsheetml.sheet")
    markdown = markdown_of(api, conversion)
    for value in ("Region", "Revenue", "North", "4711", "South", "815"):
        assert value in markdown


def test_a_pptx_converts_with_its_slide_text(api, tmp_path):
    content = pptx_bytes(tmp_path, title="Roadmap review", point="Launch moves to spring")
    conversion = completed(convert(api, "deck.pptx", content))
    assert conversion.document.content_type.endswith("presentationml.presentation")
    markdown = markdown_of(api, conversion)
    assert "Roadmap review" in markdown and "Launch moves to spring" in markdown


TEXT_CASES = {  # name -> (content, content type recorded, texts the Markdown holds)
    "notes.txt": (
        "Plain notes, first line.\nSecond line: caf\u00e9 cr\u00e8me.\n".encode(),
        "text/plain",
        ["Plain notes, first line.", "caf\u00e9 cr\u00e8me"],
    ),
    "stock.csv": (b"item,count\nwidgets,9876\ngadgets,5432\n", "text/csv", ["widgets", "9876", "gadgets", "5432"]),
    "page.html": (
        b"<!doctype html><html><head><meta charset='utf-8'><title>t</title></head><body>"
        b"<h1>Web Heading</h1><p>A paragraph from the web.</p><table><tr><td>Cell A1</td>"
        b"<td>Cell B1</td></tr></table></body></html>",
        "text/html",
        ["Web Heading", "A paragraph from the web.", "Cell A1", "Cell B1"],
    ),
    "readme.md": (
        b"# Markdown Title\n\nSome **bold** text here.\n\n| Col one | Col two |\n|---|---|\n| 31 | 42 |\n",
        "text/markdown",
        ["Markdown Title", "bold", "Col one", "42"],
    ),
}


@pytest.mark.parametrize("name", sorted(TEXT_CASES))
def test_a_text_document_converts(api, name):
    content, content_type, texts = TEXT_CASES[name]
    conversion = completed(convert(api, name, content))
    assert (conversion.document.kind, conversion.document.content_type) == ("office", content_type)
    markdown = markdown_of(api, conversion)
    for text in texts:
        assert text in markdown
    if name == "readme.md":  # rendered, not shown as source
        assert "**bold**" not in markdown and "|---|" not in markdown


def test_a_corrupt_docx_fails_its_job_with_a_reason(api):
    conversion = convert(api, "broken.docx", corrupt_docx_bytes())
    assert conversion.status == "failed"
    assert "LibreOffice could not read the file as a DOCX document" in conversion.error
    assert "javaldx" not in conversion.error
    assert conversion.pages.count() == 0


def test_without_libreoffice_an_office_job_fails_naming_the_program(api, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no soffice on it
    conversion = convert(api, "notes.txt", b"Text that needs LibreOffice.\n")
    assert conversion.status == "failed"
    assert "no 'soffice' program" in conversion.error and "SOFFICE_BINARY" in conversion.error


def test_the_libreoffice_program_is_a_setting(api, settings, tmp_path):
    settings.SOFFICE_BINARY = str(tmp_path / "office" / "bin" / "soffice")
    conversion = convert(api, "notes.txt", b"Text that needs LibreOffice.\n")
    assert conversion.status == "failed" and str(tmp_path / "office") in conversion.error


def test_libreoffice_past_its_time_limit_is_killed_and_the_job_fails(api, settings):
    settings.OFFICE_TIMEOUT_SECONDS = 0.2
    conversion = convert(api, "report.docx", docx_bytes(heading="Slow", paragraph="Too slow.", cells=[["a"]]))
    assert conversion.status == "failed"
    assert "did not finish converting the DOCX document within 0.2 s (OFFICE_TIMEOUT_SECONDS)" in conversion.error
    assert soffice_processes_under(settings.DATA_DIR) == []
    assert list((settings.DATA_DIR / "tmp").iterdir()) == []  # its scratch folder is gone too


def soffice_processes_under(folder: Path) -> list[int]:
    """Processes whose command line names ``folder`` (LibreOffice's profile lives there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(folder).encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_an_office_file_over_office_max_mb_is_a_413(api, settings):
    settings.OFFICE_MAX_MB = 1
    answer = submit(api, "big.txt", b"a line of text\n" * 70_000)
    assert answer.status_code == 413
    assert answer.json() == {"detail": "TXT files are converted up to 1 MB (OFFICE_MAX_MB); this one is larger."}


def test_a_converted_document_past_max_pages_fails_with_the_reason(api, settings):
    settings.MAX_PAGES = 1
    conversion = convert(api, "long.txt", b"line\n" * 200)  # ~4 pages once laid out
    assert conversion.status == "failed"
    assert "The converted document has" in conversion.error and "the limit is 1" in conversion.error


def test_the_worker_leaves_no_scratch_files(api, settings):
    completed(convert(api, "notes.txt", b"Scratch check.\n"))
    completed(convert(api, "scan.png", image_bytes("Scratch check", "PNG")))
    assert list((settings.DATA_DIR / "tmp").iterdir()) == []


def test_libreoffice_fetches_nothing_a_document_links_to(api):
    """An <img> in HTML (or Markdown) must not make the worker request a URL: it could be an
    internal service or a cloud metadata address (server-side request forgery)."""
    import http.server
    import threading

    requests = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the stdlib's name)
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_OPTIONS = do_HEAD = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        html = f'<!doctype html><html><body><p>Linked picture below.</p><img src="{url}/html.png"></body></html>'
        markdown = f"# Linked\n\nA picture: ![secret]({url}/markdown.png)\n"
        for name, content in (("page.html", html), ("notes.md", markdown)):
            completed(convert(api, name, content.encode()))
    finally:
        server.shutdown()
    assert requests == []


def test_a_cancel_stops_libreoffice_mid_conversion(transactional_db, settings):
    """Cancelling a job whose Office file is being converted kills LibreOffice within about a
    second instead of waiting for it (up to OFFICE_TIMEOUT_SECONDS)."""
    import threading
    import time

    from django.db import connection

    from conversions import services

    settings.DOTSOCR_CONFIGURED = False
    owner = services.default_owner()
    content = docx_bytes(heading="Cancel me", paragraph="Long enough to catch.", cells=[["a"]])
    document = services.create_document(
        owner=owner, upload=SimpleUploadedFile("cancel.docx", content), max_pages=settings.MAX_PAGES
    )
    conversion = services.create_conversion(document=document, owner=owner)
    outcome = []

    def work():
        try:
            outcome.append(pipeline.run_conversion(str(conversion.pk)))
        finally:
            connection.close()  # this thread's own

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 60
    while not soffice_processes_under(settings.DATA_DIR) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert soffice_processes_under(settings.DATA_DIR), "LibreOffice never started"
    services.cancel_conversion(conversion=Conversion.objects.get(pk=conversion.pk))
    worker.join(timeout=30)
    assert outcome == ["cancelled"]
    assert Conversion.objects.get(pk=conversion.pk).status == "cancelled"
    assert soffice_processes_under(settings.DATA_DIR) == []
    assert list((settings.DATA_DIR / "tmp").iterdir()) == []
