"""Damaged PDFs: the pages that can be read are recovered (qpdf's repair, or a page tree
rebuilt from the page objects that survive), the document says so everywhere a user
looks, and only a file with nothing recoverable is refused, with its reason.

Each damaged file is generated here and first shown to defeat MuPDF on its own."""

import re

import pymupdf
import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from conversions import services
from conversions.exceptions import InvalidDocument
from conversions.models import Conversion, Document
from tests.conftest import CORPUS, FOUR_PAGES, stored, upload_of
from tests.test_bad_input_pdfs import FONT, assemble, pdf_bomb, stream, upload
from workers import pipeline
from workers.inputs import repair
from workers.pdf import open_pdf

ZEROED_PAGE_TREE = CORPUS / "017-unreadable-meta-data" / "unreadablemetadata.pdf"
NO_PAGES_REASON = "The PDF has no pages it can read: its page tree is missing or damaged."
TREE_NOTE = "{} pages recovered; the page tree was damaged"
STRUCTURE_NOTE = "{} pages recovered; the file's structure was damaged"


# --- damaged files ------------------------------------------------------------------------


def pdf_of_pages(texts: list[str], **save_options) -> bytes:
    document = pymupdf.open()
    for text in texts:
        document.new_page().insert_text((72, 72), text, fontsize=14)
    return document.tobytes(**save_options)


def xref_stream_damaged() -> bytes:
    """A PDF 1.5 file whose cross-reference stream (its xref table and trailer in one)
    lost a byte of its /Length key, and whose startxref points at the file's start."""
    content = pdf_of_pages(["Recovered by qpdf, page one", "Recovered by qpdf, page two"], use_objstms=1)
    xref_at = content.rindex(b"/Type/XRef")
    damaged = content[:xref_at] + re.sub(rb"/Length (\d+)", rb"/L ngth \1", content[xref_at:], count=1)
    return re.sub(rb"startxref\n\d+", b"startxref\n0", damaged)


def zeroed(content: bytes, *numbers: int) -> bytes:
    """The objects ``numbers`` overwritten with NUL bytes, header to endobj, as a disk
    or transfer error leaves them; the xref table still points at them."""
    for number in numbers:
        found = re.search(rb"(?<![0-9])%d 0 obj.*?endobj" % number, content, re.S)
        content = content[: found.start()] + bytes(found.end() - found.start()) + content[found.end() :]
    return content


def page_tree_root_of(content: bytes) -> int:
    return int(re.search(rb"(\d+) 0 obj\s*<<\s*/Type\s*/Pages", content)[1])


def root_destroyed(texts: list[str]) -> bytes:
    content = pdf_of_pages(texts)
    return zeroed(content, page_tree_root_of(content))


def intermediate_node_survives() -> bytes:
    """Root (2) destroyed; the intermediate node (3) survives with the pages' inherited
    font and MediaBox, which the pages themselves do not carry."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 2 >>",
        b"<< /Type /Pages /Parent 2 0 R /Kids [4 0 R 5 0 R] /Count 2 /MediaBox [0 0 300 400] "
        b"/Resources << /Font << /F1 6 0 R >> >> >>",
        b"<< /Type /Page /Parent 3 0 R /Contents 7 0 R >>",
        b"<< /Type /Page /Parent 3 0 R /Contents 8 0 R >>",
        FONT,
        stream(b"BT /F1 12 Tf 20 300 Td (Inherited font one) Tj ET"),
        stream(b"BT /F1 12 Tf 20 300 Td (Inherited font two) Tj ET"),
    ]
    return zeroed(assemble(objects), 2)


def mupdf_gives_up(content: bytes) -> bool:
    try:
        with pymupdf.open(stream=content, filetype="pdf") as document:
            return document.page_count == 0
    except Exception:
        return True


@pytest.fixture
def api(db):
    return APIClient()


def post_pdf(api, content: bytes, name: str = "damaged.pdf") -> dict:
    response = api.post("/api/v1/documents", {"file": upload(content, name)}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def convert(api, document_id: str) -> Conversion:
    response = api.post("/api/v1/conversions", {"document": document_id, "engine": "textlayer"}, format="json")
    assert response.status_code == 201, response.content
    assert pipeline.run_conversion(response.json()["id"]) == "completed"
    return Conversion.objects.get(pk=response.json()["id"])


def page_texts(conversion: Conversion) -> list[str]:
    return [page.markdown for page in conversion.pages.order_by("page_no")]


# --- recovered -------------------------------------------------------------------------------


def test_corpus_file_with_a_zeroed_page_tree_converts_its_three_surviving_pages(api, settings):
    assert mupdf_gives_up(ZEROED_PAGE_TREE.read_bytes())
    document = post_pdf(api, ZEROED_PAGE_TREE.read_bytes(), ZEROED_PAGE_TREE.name)
    assert document["page_count"] == 3 and document["repaired"] is True
    assert document["repair_note"] == TREE_NOTE.format(3)
    conversion = convert(api, document["id"])
    texts = page_texts(conversion)
    assert len(texts) == 3 and "Wirewound" in texts[0]
    shown = api.get(f"/api/v1/conversions/{conversion.pk}").json()["document"]
    assert shown["repaired"] is True and shown["repair_note"] == TREE_NOTE.format(3)


def test_repaired_upload_is_stored_beside_the_original(api, settings):
    original = ZEROED_PAGE_TREE.read_bytes()
    document = Document.objects.get(pk=post_pdf(api, original)["id"])
    assert stored(document.original_path).read_bytes() == original
    assert document.sha256 and document.size == len(original)  # of the file the client sent
    with open_pdf(stored(document.stored_path)) as repaired:
        assert repaired.page_count == 3
    assert sorted(path.name for path in settings.UPLOAD_DIR.iterdir()) == sorted(
        [stored(document.stored_path).name, stored(document.original_path).name]
    )


def test_xref_and_trailer_damaged_beyond_mupdf_are_repaired_by_qpdf(api):
    content = xref_stream_damaged()
    assert mupdf_gives_up(content)
    document = post_pdf(api, content)
    assert (document["repaired"], document["repair_note"]) == (True, STRUCTURE_NOTE.format(2))
    texts = page_texts(convert(api, document["id"]))
    assert ["Recovered by qpdf, page one" in texts[0], "Recovered by qpdf, page two" in texts[1]] == [True, True]


def test_destroyed_page_tree_root_is_rebuilt_from_the_surviving_pages_in_file_order(api):
    content = root_destroyed(["Survivor one", "Survivor two", "Survivor three"])
    assert mupdf_gives_up(content)
    document = post_pdf(api, content)
    assert (document["page_count"], document["repair_note"]) == (3, TREE_NOTE.format(3))
    texts = page_texts(convert(api, document["id"]))
    assert ["Survivor one" in texts[0], "Survivor two" in texts[1], "Survivor three" in texts[2]] == [True] * 3


def test_pages_keep_what_they_inherited_from_a_surviving_branch_of_the_tree(api):
    content = intermediate_node_survives()
    assert mupdf_gives_up(content)
    document = post_pdf(api, content)
    assert document["repair_note"] == TREE_NOTE.format(2)
    with open_pdf(stored(Document.objects.get(pk=document["id"]).stored_path)) as repaired:
        assert [page.rect for page in repaired] == [pymupdf.Rect(0, 0, 300, 400)] * 2
    texts = page_texts(convert(api, document["id"]))
    assert ["Inherited font one" in texts[0], "Inherited font two" in texts[1]] == [True, True]


def test_one_page_lost_with_the_root_leaves_the_others(api):
    content = pdf_of_pages(["Kept first", "Lost second", "Kept third"])
    lost_page = int(re.findall(rb"(\d+) 0 obj\s*<</Type/Page/", content)[1])
    damaged = zeroed(content, page_tree_root_of(content), lost_page)
    document = post_pdf(api, damaged)
    assert document["repair_note"] == TREE_NOTE.format(2)
    texts = page_texts(convert(api, document["id"]))
    assert len(texts) == 2 and "Kept first" in texts[0] and "Kept third" in texts[1]


# --- refused --------------------------------------------------------------------------------


def test_file_with_no_surviving_page_is_refused_with_the_reason_and_leaves_nothing(api, settings):
    content = pdf_of_pages(["Gone one", "Gone two"])
    pages = [int(number) for number in re.findall(rb"(\d+) 0 obj\s*<</Type/Page/", content)]
    damaged = zeroed(content, page_tree_root_of(content), *pages)
    assert mupdf_gives_up(damaged)
    response = api.post("/api/v1/documents", {"file": upload(damaged)}, format="multipart")
    assert response.status_code == 400 and response.json() == {"detail": NO_PAGES_REASON}
    assert Document.objects.count() == 0 and list(settings.UPLOAD_DIR.iterdir()) == []


def test_rebuilt_tree_with_more_pages_than_the_limit_is_refused_while_scanning(owner, settings):
    content = root_destroyed(["One", "Two", "Three"])
    with pytest.raises(InvalidDocument) as refused:
        services.create_document(owner=owner, upload=upload(content), max_pages=2)
    assert refused.value.detail == "The PDF has more than 2 pages; the limit is 2."
    assert list(settings.UPLOAD_DIR.iterdir()) == []


def test_repair_past_its_time_bound_is_stopped(tmp_path):
    (tmp_path / "repair").mkdir()
    target = tmp_path / "repair" / "repaired.pdf"
    with pytest.raises(repair.RepairFailed, match=r"^the repair took longer than 0.01 s$"):
        repair.repair_pdf(ZEROED_PAGE_TREE, target, seconds=0.01)
    assert list(target.parent.iterdir()) == []


def test_repair_past_its_memory_bound_ends_without_output(tmp_path):
    (tmp_path / "repair").mkdir()
    target = tmp_path / "repair" / "repaired.pdf"
    with pytest.raises(repair.RepairFailed, match=r"^the repair process ended with code "):
        repair.repair_pdf(ZEROED_PAGE_TREE, target, memory_mb=1)
    assert list(target.parent.iterdir()) == []


def test_a_bomb_behind_a_destroyed_page_tree_is_rebuilt_without_inflating_and_fails_its_own_job(owner):
    content = zeroed(pdf_bomb(), 2)  # the bomb's page tree root is object 2
    assert mupdf_gives_up(content)
    document = services.create_document(owner=owner, upload=upload(content, "bomb.pdf"), max_pages=10)
    # qpdf copied the 1 GB stream as the ~1 MB of Flate data it is.
    assert document.repaired and stored(document.stored_path).stat().st_size < 2 * len(content)
    conversion = services.create_conversion(document=document, owner=owner, engine="textlayer")
    assert pipeline.run_conversion(str(conversion.pk)) == "failed"
    conversion.refresh_from_db()
    assert "the file looks like a decompression bomb" in conversion.error


def test_encrypted_file_is_refused_as_before_not_repaired(owner):
    encrypted = CORPUS / "005-libreoffice-writer-password" / "libreoffice-writer-password.pdf"
    with pytest.raises(InvalidDocument, match="password"):
        services.create_document(owner=owner, upload=upload_of(encrypted), max_pages=10)


# --- the worker's open step --------------------------------------------------------------------


def test_stored_file_that_mupdf_can_no_longer_read_is_repaired_by_the_worker(make_conversion, settings):
    conversion = make_conversion(FOUR_PAGES, engine="textlayer")
    key = conversion.document.stored_path
    stored(key).write_bytes(ZEROED_PAGE_TREE.read_bytes())  # damaged in storage after its upload was checked
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    conversion.refresh_from_db()
    document = Document.objects.get(pk=conversion.document_id)
    assert (document.repaired, document.repair_note, document.page_count) == (True, TREE_NOTE.format(3), 3)
    assert document.original_path == key and document.stored_path != key and stored(document.stored_path).is_file()
    assert conversion.pages_total == 3 and "Wirewound" in page_texts(conversion)[0]


# --- shown to users and operators ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_jobs_message_says_what_the_repair_recovered(settings, owner):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    document = services.create_document(owner=owner, upload=upload_of(ZEROED_PAGE_TREE), max_pages=10)
    conversion = services.create_conversion(document=document, owner=owner, engine="textlayer")

    async def messages():
        from dotsocr_site.asgi import application

        socket = WebsocketCommunicator(application, f"/ws/v1/conversions/{conversion.pk}")
        assert (await socket.connect())[0]
        received = [await socket.receive_json_from()]
        await database_sync_to_async(pipeline.run_conversion)(str(conversion.pk))
        while received[-1]["status"] != "completed":
            received.append(await socket.receive_json_from(timeout=10))
        await socket.disconnect()
        return [event["message"] for event in received]

    assert f"PDF loaded with 3 pages (repaired: {TREE_NOTE.format(3)})" in async_to_sync(messages)()


def test_admin_shows_the_repair_on_the_document_and_the_conversion(owner):
    document = services.create_document(owner=owner, upload=upload_of(ZEROED_PAGE_TREE), max_pages=10)
    conversion = services.create_conversion(document=document, owner=owner, engine="textlayer")
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("admin", "admin@example.invalid", "pw"))
    listed = staff.get("/admin/conversions/document/?repaired__exact=1").content.decode()
    assert document.filename in listed
    assert TREE_NOTE.format(3) in staff.get(f"/admin/conversions/document/{document.pk}/change/").content.decode()
    page = staff.get(f"/admin/conversions/conversion/{conversion.pk}/change/").content.decode()
    assert f"Repaired: {TREE_NOTE.format(3)}" in page


@pytest.mark.django_db(transaction=True)  # files go only after the deletion commits
def test_deleting_a_repaired_document_removes_the_original_too(api, settings):
    document = Document.objects.get(pk=post_pdf(api, ZEROED_PAGE_TREE.read_bytes(), "resistor.pdf")["id"])
    assert api.delete("/documents/resistor.pdf").status_code == 200
    assert not stored(document.stored_path).exists() and not stored(document.original_path).exists()
    assert list(settings.UPLOAD_DIR.iterdir()) == []
