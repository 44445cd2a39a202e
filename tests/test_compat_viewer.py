"""The original frontend's Markdown viewer against the original routes (issue 14).

The viewer lists ``/markdown-files/{stem}``, reads each entry, shows them joined under
label lines (``*Page N*``, ``*Combined*`` for an entry without a page number) and, on
save, splits the text on the label lines, drops the ``*Page N*`` labels and PUTs the
i-th chunk to ``page_no=i``. These tests are that client.
"""

import base64
import io
import re
import zipfile

import pymupdf
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from conversions import selectors
from conversions.models import Conversion
from tests.conftest import FOUR_PAGES, ONE_PAGE, WITH_IMAGE
from workers import markdown_pictures, pipeline
from workers.ocr.layout import with_headers_footers
from workers.outputs import cells_from_dicts

LABEL_LINE = re.compile(r"^(\*Page \d+\*|\*Combined\*)$", re.MULTILINE)
EDIT = "Edited in the viewer: a sentence the model never wrote."


@pytest.fixture
def client(db):
    return APIClient()


def pdf_with_pictures(pages: int = 3, *, without_picture: int = 1) -> bytes:
    """Pages with a title, text and a picture between paragraphs (none on page
    ``without_picture``), as a born-digital report would have them."""
    document = pymupdf.open()
    for number in range(pages):
        page = document.new_page()
        page.insert_text((72, 80), f"Section {number + 1}", fontsize=18)
        page.insert_text((72, 120), f"Text on page {number + 1}, before the figure.", fontsize=11)
        if number != without_picture:
            picture = io.BytesIO()
            Image.new("RGB", (300, 200), (40 * number, 120, 200)).save(picture, "PNG")
            page.insert_image(pymupdf.Rect(72, 150, 372, 350), stream=picture.getvalue())
        page.insert_text((72, 400), "Text after the figure.", fontsize=11)
    return document.tobytes()


def converted(client, name: str, data: bytes) -> Conversion:
    upload = SimpleUploadedFile(name, data, content_type="application/pdf")
    assert client.post("/upload", {"file": upload}, format="multipart").status_code == 200
    conversion_id = client.post("/convert", {"filename": name}, format="multipart").json()["conversion_id"]
    pipeline.run_conversion(conversion_id)
    conversion = Conversion.objects.get(pk=conversion_id)
    assert conversion.status == Conversion.Status.COMPLETED, conversion.error
    return conversion


# --- the viewer, steps 1-4 of the issue ----------------------------------------------


def open_in_viewer(client, stem: str) -> str:
    """Steps 1-3: every listed entry, read and shown under its label."""
    listing = client.get(f"/markdown-files/{stem}")
    assert listing.status_code == 200
    chunks = []
    for entry in listing.json()["markdown_files"]:
        query = {} if entry["page_no"] is None else {"page_no": entry["page_no"]}
        read = client.get(f"/markdown/{stem}", query)
        assert read.status_code == 200
        label = "*Combined*" if entry["page_no"] is None else f"*Page {entry['page_no'] + 1}*"
        chunks.append(f"{label}\n\n{read.json()['content']}")
    return "\n\n".join(chunks)


def save_from_viewer(client, stem: str, text: str) -> list:
    """Step 4: split on the label lines, keep ``*Combined*`` with its chunk, drop the
    ``*Page N*`` labels, PUT chunk i to page i."""
    pieces = LABEL_LINE.split(text)
    chunks = [pieces[0]] if pieces[0].strip() else []
    for label, body in zip(pieces[1::2], pieces[2::2], strict=False):
        chunks.append(body if label.startswith("*Page") else label + body)
    return [
        client.put(f"/markdown/{stem}?page_no={index}", {"content": chunk.strip()}, format="json")
        for index, chunk in enumerate(chunks)
    ]


def edit_page(text: str, page_no: int, pages: int) -> str:
    """What a user does in the editor: add a sentence at the end of one page's text."""
    if page_no == pages - 1:
        return f"{text}\n\n{EDIT}"
    following = f"*Page {page_no + 2}*"
    return text.replace(f"\n\n{following}", f"\n\n{EDIT}\n\n{following}", 1)


def served_pages(client, stem: str, pages: int) -> list[str]:
    return [client.get(f"/markdown/{stem}", {"page_no": n}).json()["content"] for n in range(pages)]


def stored_pages(conversion: Conversion, *, headers_footers: bool = False) -> list[str]:
    return [
        selectors.page_markdown(page, headers_footers=headers_footers) for page in selectors.page_results(conversion)
    ]


def as_links(markdown: str, conversion: Conversion) -> str:
    base = f"http://testserver/api/v1/conversions/{conversion.pk}/files/"
    return markdown_pictures.relink(markdown, lambda name: base + name)


ROUND_TRIPS = [
    pytest.param(WITH_IMAGE.name, lambda: WITH_IMAGE.read_bytes(), 0, id="1-page-with-a-picture"),
    pytest.param(FOUR_PAGES.name, lambda: FOUR_PAGES.read_bytes(), 2, id="4-pages"),
    pytest.param("figures.pdf", lambda: pdf_with_pictures(3), 1, id="3-pages-pictures-on-the-unedited-ones"),
]


@pytest.mark.parametrize("name, data, edited", ROUND_TRIPS)
def test_viewer_round_trip_changes_only_the_edited_page(client, name, data, edited):
    conversion = converted(client, name, data())
    stem, pages = conversion.document.stem, conversion.pages_total
    served_before, stored_before = served_pages(client, stem, pages), stored_pages(conversion)

    saves = save_from_viewer(client, stem, edit_page(open_in_viewer(client, stem), edited, pages))

    assert [save.status_code for save in saves] == [200] * pages
    served_after, stored_after = served_pages(client, stem, pages), stored_pages(conversion)
    for page_no in range(pages):
        if page_no == edited:
            assert served_after[page_no] == f"{served_before[page_no]}\n\n{EDIT}"
            assert stored_after[page_no] == f"{stored_before[page_no]}\n\n{EDIT}"
        else:
            assert served_after[page_no] == served_before[page_no]
            assert stored_after[page_no] == stored_before[page_no]  # pictures by file name, not data URLs
    assert open_in_viewer(client, stem).count(EDIT) == 1
    assert_whole_document_rebuilt_from_the_pages(client, conversion, stored_after, edited)


def assert_whole_document_rebuilt_from_the_pages(client, conversion, pages_nohf, edited):
    stem = conversion.document.stem
    pages_hf = stored_pages(conversion, headers_footers=True)
    edited_page = conversion.pages.get(page_no=edited)
    assert pages_hf[edited] == with_headers_footers(cells_from_dicts(edited_page.cells), pages_nohf[edited])
    api = f"/api/v1/conversions/{conversion.pk}/markdown"
    assert (
        client.get(api, {"headers_footers": "false"}).content.decode()
        == as_links("\n\n".join(pages_nohf), conversion) + "\n"
    )
    assert client.get(api).content.decode() == as_links("\n\n".join(pages_hf), conversion) + "\n"

    archive = zipfile.ZipFile(
        io.BytesIO(b"".join(client.get(f"/api/v1/conversions/{conversion.pk}/download.zip").streaming_content))
    )
    assert archive.read(f"{stem}_nohf.md").decode() == "\n\n".join(pages_nohf) + "\n"
    assert archive.read(f"{stem}.md").decode() == "\n\n".join(pages_hf) + "\n"
    for page_no, (nohf, with_hf) in enumerate(zip(pages_nohf, pages_hf, strict=True)):
        assert archive.read(f"{stem}_page_{page_no}_nohf.md").decode() == nohf
        assert archive.read(f"{stem}_page_{page_no}.md").decode() == with_hf


def test_an_edited_page_keeps_its_running_heads_in_the_markdown_with_headers_and_footers():
    from workers.ocr.base import Cell

    cells = [
        Cell((0, 0, 9, 9), "Page-header", "Journal of Tests"),
        Cell((0, 10, 9, 19), "Text", "Body."),
        Cell((0, 20, 9, 29), "Page-footer", "7"),
    ]
    assert with_headers_footers(cells, "New body.") == "Journal of Tests\n\nNew body.\n\n7"
    assert with_headers_footers(cells[1:2], "New body.") == "New body."


# --- what else could put text on the wrong page -------------------------------------


def test_put_without_page_no_on_a_one_page_conversion_edits_page_0(client):
    conversion = converted(client, ONE_PAGE.name, ONE_PAGE.read_bytes())
    stem = conversion.document.stem
    saved = client.put(f"/markdown/{stem}", {"content": "# Whole edit"}, format="json")
    assert saved.status_code == 200 and saved.json()["message"] == "Markdown content updated successfully"
    assert client.get(f"/markdown/{stem}", {"page_no": 0}).json()["content"] == "# Whole edit"
    assert client.get(f"/markdown/{stem}").json()["content"] == "# Whole edit"
    assert client.get(f"/markdown-files/{stem}").json()["total"] == 1


def unchanged_outputs(conversion: Conversion) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in selectors.output_files(conversion)}


@pytest.mark.parametrize(
    "query, status, detail",
    [
        ("", 422, "page_no is required"),
        ("?page_no=4", 404, "No page 4 in conversion"),
        ("?page_no=-1", 422, "page_no must be a whole number"),
        ("?page_no=1.0", 422, "page_no must be a whole number"),
    ],
)
def test_a_save_that_names_no_page_of_a_longer_conversion_changes_nothing(client, query, status, detail):
    conversion = converted(client, FOUR_PAGES.name, FOUR_PAGES.read_bytes())
    files_before = unchanged_outputs(conversion)
    refused = client.put(f"/markdown/{conversion.document.stem}{query}", {"content": "lost"}, format="json")
    assert refused.status_code == status and detail in refused.json()["detail"]
    assert not conversion.pages.filter(markdown_edited__isnull=False).exists()
    assert unchanged_outputs(conversion) == files_before


# --- pictures, read from another origin ---------------------------------------------

ORIGIN = "http://frontend.example:3000"


def embedded_jpegs(markdown: str) -> list[bytes]:
    return [base64.b64decode(match[2], validate=True) for match in markdown_pictures.EMBEDDED_JPEG.finditer(markdown)]


def image_targets(markdown: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]*)\)", markdown)


def test_original_routes_serve_pictures_as_jpeg_data_urls(client):
    conversion = converted(client, "figures.pdf", pdf_with_pictures(3))
    stem = conversion.document.stem
    reads = [client.get(f"/markdown/{stem}", {"page_no": n}, HTTP_ORIGIN=ORIGIN) for n in range(3)]
    reads.append(client.get(f"/markdown/{stem}", HTTP_ORIGIN=ORIGIN))
    for read in reads:
        assert read["Access-Control-Allow-Origin"] in ("*", ORIGIN)
    contents = [read.json()["content"] for read in reads]
    assert [len(image_targets(content)) for content in contents] == [1, 0, 1, 2]
    for content in contents:
        assert all(target.startswith("data:image/jpeg;base64,") for target in image_targets(content))
        for jpeg in embedded_jpegs(content):
            assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    crops = sorted(
        path.read_bytes() for name, path in selectors.output_images(conversion).items() if "_picture_" in name
    )
    assert sorted(embedded_jpegs(contents[3])) == crops


def test_native_markdown_links_pictures_by_absolute_urls_that_load(client):
    conversion = converted(client, WITH_IMAGE.name, WITH_IMAGE.read_bytes())
    base = f"/api/v1/conversions/{conversion.pk}"
    document = client.get(f"{base}/markdown").content.decode()
    pages = client.get(f"{base}/pages").json()["pages"]
    links = image_targets(document)
    assert len(links) == 1 and image_targets(pages[0]["markdown"]) == links == image_targets(pages[0]["markdown_nohf"])
    for link in links:
        assert link.startswith(f"http://testserver{base}/files/") and link.endswith(".jpg")
        loaded = client.get(link, HTTP_ORIGIN=ORIGIN)
        assert loaded.status_code == 200 and loaded["Content-Type"] == "image/jpeg"
        assert Image.open(io.BytesIO(b"".join(loaded.streaming_content))).format == "JPEG"


def test_native_markdown_embeds_or_leaves_out_pictures_on_request(client):
    conversion = converted(client, WITH_IMAGE.name, WITH_IMAGE.read_bytes())
    base = f"/api/v1/conversions/{conversion.pk}"
    embedded = client.get(f"{base}/markdown", {"images": "embedded"}).content.decode()
    assert len(embedded_jpegs(embedded)) == 1 and len(image_targets(embedded)) == 1
    page = client.get(f"{base}/pages", {"images": "embedded"}).json()["pages"][0]
    assert embedded_jpegs(page["markdown_nohf"]) == embedded_jpegs(embedded)
    without = client.get(f"{base}/markdown", {"images": "none"}).content.decode()
    assert image_targets(without) == [] and "\n\n\n" not in without
    assert without.replace("\n", "") == re.sub(r"!\[[^\]]*\]\([^)]*\)", "", embedded).replace("\n", "")
    refused = client.get(f"{base}/markdown", {"images": "inline"})
    assert refused.status_code == 400 and "images" in refused.json()["detail"]


def test_the_zip_keeps_pictures_by_relative_name(client):
    conversion = converted(client, WITH_IMAGE.name, WITH_IMAGE.read_bytes())
    archive = zipfile.ZipFile(
        io.BytesIO(b"".join(client.get(f"/api/v1/conversions/{conversion.pk}/download.zip").streaming_content))
    )
    (target,) = image_targets(archive.read(f"{conversion.document.stem}.md").decode())
    assert "/" not in target and target in archive.namelist()


def test_a_pasted_picture_is_kept_as_pasted(client):
    conversion = converted(client, ONE_PAGE.name, ONE_PAGE.read_bytes())
    picture = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(picture, "JPEG")
    pasted = f"![pasted]({markdown_pictures.data_url(picture.getvalue())})"
    assert (
        client.put(f"/markdown/{conversion.document.stem}?page_no=0", {"content": pasted}, format="json").status_code
        == 200
    )
    assert conversion.pages.get(page_no=0).markdown_edited == pasted


# --- smaller differences from the original -------------------------------------------


@pytest.mark.parametrize("route", ["/markdown/{stem}", "/image/{stem}"])
def test_page_no_that_is_not_a_number_is_a_422(client, route):
    conversion = converted(client, ONE_PAGE.name, ONE_PAGE.read_bytes())
    answer = client.get(route.format(stem=conversion.document.stem), {"page_no": "abc"})
    assert answer.status_code == 422 and "page_no" in answer.json()["detail"]


@pytest.mark.parametrize(
    "method, route",
    [
        ("get", "/markdown-files/{stem}"),
        ("get", "/markdown/{stem}"),
        ("put", "/markdown/{stem}"),
        ("get", "/image/{stem}"),
    ],
)
@pytest.mark.parametrize("stem", ["..", "a..b", "..minimal-document"])
def test_a_stem_with_dots_that_climb_is_an_invalid_filename(client, method, route, stem):
    converted(client, ONE_PAGE.name, ONE_PAGE.read_bytes())
    path = route.format(stem=stem)
    answer = client.put(path, {"content": "x"}, format="json") if method == "put" else client.get(path)
    assert answer.status_code == 400 and answer.json() == {"detail": "Invalid filename"}


def test_a_failed_conversion_reports_progress_0(client, settings):
    from tests.test_bad_input_pdfs import pdf_bomb

    settings.MAX_PAGE_CONTENT_MB = 2
    upload = SimpleUploadedFile("bomb.pdf", pdf_bomb(inflated_mb=3), content_type="application/pdf")
    assert client.post("/upload", {"file": upload}, format="multipart").status_code == 200
    conversion_id = client.post("/convert", {"filename": "bomb.pdf"}, format="multipart").json()["conversion_id"]
    assert pipeline.run_conversion(conversion_id) == "failed"
    assert Conversion.objects.get(pk=conversion_id).progress > 0  # what the job had reached
    record = client.get(f"/conversion-status/{conversion_id}").json()
    assert record["status"] == "error" and record["progress"] == 0 and "limit is 2 MB" in record["error"]


def test_whole_document_edits_of_one_page_conversions_move_to_their_page(client):
    """The data migration (conversions/migrations/*_compat.py) keeps edits saved before
    edits were per page: a one-page conversion's becomes its page's, a longer one's stays."""
    import importlib
    from pathlib import Path

    from django.apps import apps

    (module,) = Path(__file__).parent.parent.glob("conversions/migrations/*_compat.py")
    migration = importlib.import_module(f"conversions.migrations.{module.stem}")
    one_page = converted(client, ONE_PAGE.name, ONE_PAGE.read_bytes())
    four_pages = converted(client, FOUR_PAGES.name, FOUR_PAGES.read_bytes())
    Conversion.objects.filter(pk__in=[one_page.pk, four_pages.pk]).update(markdown_edited="# Saved whole")

    migration.move_one_page_edits_to_their_page(apps, None)

    assert client.get(f"/markdown/{one_page.document.stem}", {"page_no": 0}).json()["content"] == "# Saved whole"
    assert Conversion.objects.get(pk=one_page.pk).markdown_edited is None
    assert Conversion.objects.get(pk=four_pages.pk).markdown_edited == "# Saved whole"
    assert not four_pages.pages.filter(markdown_edited__isnull=False).exists()
