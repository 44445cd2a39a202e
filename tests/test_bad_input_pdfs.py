"""Hostile and damaged PDFs, generated here (PyMuPDF and hand-written bytes): each is
refused at upload with a reason, or converted within bounds, or its job fails with a
readable reason. The makers are shared with the other bad-input test modules."""

import functools
import json
import struct
import subprocess
import sys
import tracemalloc
import zlib

import pymupdf
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from conversions import services
from conversions.models import Conversion, Document
from tests.conftest import REPO, stored
from workers import pipeline
from workers.pdf import MAX_RENDER_SIDE, InvalidPdf, PdfPage, inspect_pdf, iter_pages, open_pdf

MB = 1024 * 1024

# --- makers ----------------------------------------------------------------------------


def assemble(
    objects: list[bytes], trailer: bytes = b"<< /Size %(size)d /Root 1 0 R >>", startxref: int | None = None
) -> bytes:
    """A PDF with a classic xref table from numbered object bodies (object 1 first).
    ``%(xref)d`` in the trailer is replaced by the offset of the xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n" + trailer % {b"size": len(objects) + 1, b"xref": xref_at}
    out += b"\nstartxref\n%d\n%%%%EOF\n" % (xref_at if startxref is None else startxref)
    return bytes(out)


def stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(data), extra, data)


def text_content(text: str) -> bytes:
    return b"BT /F1 24 Tf 72 720 Td (%s) Tj ET" % text.encode("ascii")


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def one_page_objects(content: bytes, kids: bytes = b"[3 0 R]", count: int = 1) -> list[bytes]:
    return [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids %s /Count %d >>" % (kids, count),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        content,
        FONT,
    ]


def xref_prev_to_itself() -> bytes:
    """An xref section whose /Prev names itself: a reader following /Prev loops forever."""
    return assemble(
        one_page_objects(stream(text_content("Xref loop survived"))),
        trailer=b"<< /Size %(size)d /Root 1 0 R /Prev %(xref)d >>",
    )


def compressed_objects_pdf(objstm_payload=None, *, prev_to_itself: bool = False) -> bytes:
    """A PDF 1.5 file whose catalog, page tree, page and font sit in an object stream,
    indexed by an xref stream. ``objstm_payload`` replaces the (inflated) object stream."""
    inner = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: one_page_objects(b"")[2],
        5: FONT,
    }
    header, body = b"", b""
    for number, text in inner.items():
        header += b"%d %d " % (number, len(body))
        body += text + b" "
    payload = zlib.compress(header + body) if objstm_payload is None else objstm_payload
    content = text_content("Compressed objects")
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    content_at = len(out)
    out += b"4 0 obj\n%s\nendobj\n" % stream(content)
    objstm_at = len(out)
    out += b"6 0 obj\n%s\nendobj\n" % stream(
        payload, b"/Type /ObjStm /N 4 /First %d /Filter /FlateDecode" % len(header)
    )
    xref_at = len(out)
    rows = [
        (0, 0, 65535),
        (2, 6, 0),
        (2, 6, 1),
        (2, 6, 2),
        (1, content_at, 0),
        (2, 6, 3),
        (1, objstm_at, 0),
        (1, xref_at, 0),
    ]
    table = b"".join(struct.pack(">BIH", *row) for row in rows)
    prev = b" /Prev %d" % xref_at if prev_to_itself else b""
    out += b"7 0 obj\n%s\nendobj\n" % stream(table, b"/Type /XRef /Size 8 /Root 1 0 R /W [1 4 2]" + prev)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


def garbage_flate() -> bytes:
    return b"\x78\x9c" + b"\xde\xad\xbe\xef" * 64


def flate_bomb(prefix: bytes, inflated_mb: int) -> bytes:
    """A zlib stream that inflates to ``prefix`` then ``inflated_mb`` MB of zeros, built in
    chunks without ever holding the inflated data: after a full flush the compressor
    forgets its history, so every further MB of zeros compresses to the same bytes; only
    the Adler-32 checksum at the end has to be carried through all of them."""
    compressor = zlib.compressobj(9)
    zeros = bytes(MB)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    final_block = compressor.flush(zlib.Z_FINISH)[:-4]  # its checksum covers one MB only
    checksum = zlib.adler32(prefix)
    for _ in range(inflated_mb):
        checksum = zlib.adler32(zeros, checksum)
    return head + block * inflated_mb + final_block + struct.pack(">I", checksum)


@functools.cache
def pdf_bomb(inflated_mb: int = 1024) -> bytes:
    """One page whose content stream is ~1 MB of Flate data inflating to ``inflated_mb`` MB."""
    bomb = flate_bomb(text_content("Looks harmless") + b"\n", inflated_mb)
    return assemble(one_page_objects(stream(bomb, b"/Filter /FlateDecode")))


def form_xobject_bomb(inflated_mb: int) -> bytes:
    """The bomb hidden in a form XObject the page draws, not in the page's own content."""
    bomb = flate_bomb(b"0 0 m 10 10 l S\n", inflated_mb)
    objects = one_page_objects(stream(b"/Fm1 Do"))
    objects[2] = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /XObject << /Fm1 6 0 R >> >> >>"
    )
    objects.append(stream(bomb, b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Filter /FlateDecode"))
    return assemble(objects)


def pdf_with_pages(count: int) -> bytes:
    """``count`` pages sharing one content stream, written as bytes (PyMuPDF takes ~1 ms a
    page to add them, too slow for 10,000)."""
    first_page = 5
    kids = b" ".join(b"%d 0 R" % (first_page + n) for n in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count),
        stream(text_content("Many pages")),
        FONT,
    ]
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 3 0 R "
        b"/Resources << /Font << /F1 4 0 R >> >> >>"
    )
    return assemble(objects + [page] * count)


def giant_page_pdf(side_pt: float = 20000) -> bytes:
    """One ``side_pt`` x ``side_pt`` page (a poster) with a title and a picture."""
    document = pymupdf.open()
    page = document.new_page(width=side_pt, height=side_pt)
    page.insert_text((side_pt * 0.05, side_pt * 0.15), "A poster twenty thousand points wide", fontsize=side_pt / 35)
    picture = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 64), False)
    picture.clear_with(90)
    page.insert_image(pymupdf.Rect(0.1, 0.3, 0.6, 0.7) * side_pt, pixmap=picture, keep_proportion=False)
    return document.tobytes()


def encrypted_pdf() -> bytes:
    document = pymupdf.open()
    document.new_page().insert_text((72, 72), "Secret text behind a password")
    return document.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="user-secret", owner_pw="owner-secret")


def upload(content: bytes, name: str = "document.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/pdf")


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def api(db):
    return APIClient()


def post_pdf(api, content: bytes, name: str = "document.pdf", route: str = "/api/v1/documents"):
    return api.post(route, {"file": upload(content, name)}, format="multipart")


def convert_in_process(owner, content: bytes, name: str = "document.pdf") -> Conversion:
    """Upload through the service, then run the job in this process (text-layer engine)."""
    document = services.create_document(owner=owner, upload=upload(content, name), max_pages=10_000)
    conversion = services.create_conversion(document=document, owner=owner, engine="textlayer")
    pipeline.run_conversion(str(conversion.pk))
    return Conversion.objects.get(pk=conversion.pk)


# --- refused at upload -------------------------------------------------------------------

DAMAGED_STRUCTURE = {
    "page tree that contains itself": (
        assemble(one_page_objects(stream(text_content("Loop")), kids=b"[2 0 R 3 0 R]", count=2)),
        "The PDF's page tree is damaged: code=7: cycle in page tree.",
    ),
    "page count that is not a number of pages": (
        assemble(one_page_objects(stream(text_content("Liar")), count=100_000_000)),
        "The PDF's page tree is damaged: code=7: Invalid number of pages.",
    ),
    "object stream of garbage Flate data": (
        compressed_objects_pdf(garbage_flate()),
        "The PDF has no pages it can read: its page tree is missing or damaged.",
    ),
    "object stream with nonsense offsets": (
        compressed_objects_pdf(zlib.compress(b"1 9999 2 -5 3 abc 5 0 << /Type /Catalog >>")),
        "The PDF has no pages it can read: its page tree is missing or damaged.",
    ),
    "encrypted with AES-256": (encrypted_pdf(), "The PDF is encrypted; a password is needed to open it."),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_STRUCTURE))
def test_damaged_structure_is_refused_at_upload_with_its_reason(api, settings, case):
    content, detail = DAMAGED_STRUCTURE[case]
    response = post_pdf(api, content)
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert Document.objects.count() == 0 and list(settings.UPLOAD_DIR.iterdir()) == []


# --- xref loops: MuPDF breaks them itself, and the file converts --------------------------

XREF_LOOPS = {
    "classic xref table whose /Prev is itself": (xref_prev_to_itself(), "Xref loop survived"),
    "xref stream whose /Prev is itself": (compressed_objects_pdf(prev_to_itself=True), "Compressed objects"),
}


@pytest.mark.parametrize("case", sorted(XREF_LOOPS))
def test_xref_section_pointing_at_itself_converts_to_its_text(owner, case):
    # MuPDF remembers the xref offsets it has read and stops at a repeat, so the loop is
    # harmless and the document is intact: converting it is the useful answer.
    content, text = XREF_LOOPS[case]
    conversion = convert_in_process(owner, content)
    assert conversion.status == Conversion.Status.COMPLETED, conversion.error
    assert text in conversion.pages.get().markdown


def test_page_tree_damage_found_only_while_converting_fails_the_job_naming_the_page(owner, settings, tmp_path):
    # Accepted while intact, then damaged in storage: the page that cannot be loaded is
    # named in the job's error instead of a bare MuPDF exception.
    document = services.create_document(owner=owner, upload=upload(pdf_with_pages(2)), max_pages=10)
    stored(document.stored_path).write_bytes(
        assemble(one_page_objects(stream(text_content("Loop")), kids=b"[2 0 R 3 0 R]", count=2))
    )
    conversion = services.create_conversion(document=document, owner=owner, engine="textlayer")
    pipeline.run_conversion(str(conversion.pk))
    conversion.refresh_from_db()
    assert conversion.status == Conversion.Status.FAILED
    assert conversion.error == "Page 1 cannot be read: code=7: cycle in page tree."


# --- decompression bombs ------------------------------------------------------------------


def test_flate_bomb_maker_inflates_to_what_it_says(tmp_path):
    bomb = flate_bomb(b"prefix", 8)
    inflated = zlib.decompress(bomb)
    assert inflated == b"prefix" + bytes(8 * MB) and len(bomb) < 64 * 1024


def test_pdf_bomb_is_accepted_at_upload_and_its_job_fails_without_inflating_it(owner):
    content = pdf_bomb()
    assert len(content) < 2 * MB  # 1 GB of drawing instructions in a ~1 MB file
    conversion = convert_in_process(owner, content, "bomb.pdf")
    assert conversion.status == Conversion.Status.FAILED
    assert conversion.error == (
        "Page 1: its drawing instructions inflate to more than 128 MB when decompressed "
        "(the limit is 128 MB); the file looks like a decompression bomb."
    )
    assert conversion.output_dir == "" and not conversion.pages.exists()


def test_budget_counts_form_xobjects_and_stops_at_the_limit(tmp_path):
    path = tmp_path / "form-bomb.pdf"
    path.write_bytes(form_xobject_bomb(inflated_mb=3))
    with open_pdf(path) as document:
        with pytest.raises(InvalidPdf, match=r"^Page 1: .* more than 2 MB"):
            list(iter_pages(document, 72, content_limit_mb=2))
    with open_pdf(path) as document:  # the same page within a larger budget is drawn
        assert [page.size_px for page in iter_pages(document, 72, content_limit_mb=4)] == [(612, 792)]


def test_budget_is_per_page_so_a_stream_shared_by_pages_counts_on_each(tmp_path):
    # Many pages may draw one stream; MuPDF inflates it again for each. The bound is what
    # one page draws: two 3 MB pages pass a 4 MB budget (6 MB in all), not a 2 MB one.
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R 5 0 R] /Count 2 >>",
        stream(flate_bomb(b"", 3), b"/Filter /FlateDecode"),
    ]
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 3 0 R >>"
    path = tmp_path / "shared.pdf"
    path.write_bytes(assemble(objects + [page, page]))
    with open_pdf(path) as document:
        assert [page.number for page in iter_pages(document, 72, content_limit_mb=4)] == [0, 1]
    with open_pdf(path) as document:
        with pytest.raises(InvalidPdf, match=r"^Page 1: "):
            next(iter_pages(document, 72, content_limit_mb=2))


# --- a 20,000 x 20,000 pt page -------------------------------------------------------------


@pytest.mark.parametrize("side_pt", [20000, 14400.7, 4501.3])
def test_giant_page_renders_within_the_cap(tmp_path, side_pt):
    path = tmp_path / "poster.pdf"
    path.write_bytes(giant_page_pdf(side_pt))
    with open_pdf(path) as document:
        page = PdfPage(page=document[0], dpi=200)
        width, height = page.size_px
        jpeg = pymupdf.Pixmap(page.jpeg())
        crop = pymupdf.Pixmap(page.crop_jpeg((-(10**6), -(10**6), 10**6, 10**6)))
    assert max(width, height) <= MAX_RENDER_SIDE and width == height
    assert (jpeg.width, jpeg.height) == (width, height)
    assert (crop.width, crop.height) == (width, height)  # a crop never reaches past the page


def test_giant_page_converts_with_its_page_image_and_picture_within_the_cap(owner):
    conversion = convert_in_process(owner, giant_page_pdf(), "poster.pdf")
    assert conversion.status == Conversion.Status.COMPLETED, conversion.error
    result = conversion.pages.get()
    assert "A poster twenty thousand points wide" in result.markdown
    images = sorted(stored(conversion.output_dir).glob("*.jpg"))
    assert [image.name for image in images] == ["poster_page_0.jpg", "poster_page_0_picture_1.jpg"]
    page_image, picture = (pymupdf.Pixmap(str(image)) for image in images)
    assert max(page_image.width, page_image.height) == MAX_RENDER_SIDE
    # The picture covers half the page's width: half the capped image, not 10,000 pt.
    assert abs(picture.width - MAX_RENDER_SIDE / 2) <= 2 and abs(picture.height - MAX_RENDER_SIDE * 0.4) <= 2


# --- 10,000 pages ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ten_thousand_pages() -> bytes:
    return pdf_with_pages(10_000)


def test_ten_thousand_pages_are_refused_by_the_default_page_limit(api, settings, ten_thousand_pages):
    assert settings.MAX_PAGES == 5000
    response = post_pdf(api, ten_thousand_pages)
    assert response.status_code == 413
    assert response.json() == {"detail": "The PDF has 10000 pages; the limit is 5000."}
    assert list(settings.UPLOAD_DIR.iterdir()) == []


def test_ten_thousand_pages_are_accepted_when_the_limit_allows(api, settings, ten_thousand_pages):
    settings.MAX_PAGES = 10_000
    response = post_pdf(api, ten_thousand_pages)
    assert response.status_code == 201 and response.json()["page_count"] == 10_000


def test_counting_ten_thousand_pages_holds_no_page_in_python_memory(tmp_path, ten_thousand_pages):
    path = tmp_path / "long.pdf"
    path.write_bytes(ten_thousand_pages)
    tracemalloc.start()
    try:
        info = inspect_pdf(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.page_count == 10_000
    # Reading the file into Python, or keeping a Page object per page, would be MBs.
    assert peak < len(ten_thousand_pages) / 10, (peak, len(ten_thousand_pages))


MEASURE_INSPECT = """
import json, resource, sys
from pathlib import Path
from workers.pdf import inspect_pdf
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pages = inspect_pdf(Path(sys.argv[1])).page_count
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"pages": pages, "growth_kb": after - before}))
"""


def test_counting_ten_thousand_pages_keeps_mupdf_memory_small(tmp_path, ten_thousand_pages):
    # MuPDF's own allocations are invisible to tracemalloc: measure the peak resident
    # size of a fresh process around the call instead.
    path = tmp_path / "long.pdf"
    path.write_bytes(ten_thousand_pages)
    result = subprocess.run(
        [sys.executable, "-c", MEASURE_INSPECT, str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    measured = json.loads(result.stdout)
    assert measured["pages"] == 10_000
    # The page tree of 10,000 pages is a few MB inside MuPDF; rendering or keeping pages would be far more.
    assert measured["growth_kb"] * 1024 < 16 * len(ten_thousand_pages), measured


def test_the_page_content_limit_is_the_setting(owner, settings):
    settings.MAX_PAGE_CONTENT_MB = 2
    conversion = convert_in_process(owner, pdf_bomb(inflated_mb=3), "small-bomb.pdf")
    assert conversion.status == Conversion.Status.FAILED
    assert "(the limit is 2 MB)" in conversion.error
