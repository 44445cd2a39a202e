""".../html (rendered Markdown, sanitised, pictures linked, embedded or left out) and
.../text (plain text in reading order, no markup), both also in the zip."""

import io
import re
import zipfile

import pymupdf
import pytest
from django.test import Client

from conversions import services
from conversions.models import Conversion
from tests.dotsocr_standin import DotsOcrStandin
from workers import pipeline


@pytest.fixture
def completed(settings, make_document, owner, tmp_path):
    """A two-page conversion read by the stand-in model: title, headers, formula, list,
    a picture, a caption, a table, a footnote on each page."""
    document = pymupdf.open()
    for number in range(2):
        document.new_page().insert_text((72, 72), f"Page {number + 1}")
    path = tmp_path / "article.pdf"
    document.save(path)
    with DotsOcrStandin() as standin:
        settings.DOTSOCR = {"base_urls": [standin.url], "timeout_seconds": 5, "max_retries": 0}
        settings.DOTSOCR_CONFIGURED = True
        settings.RENDER_DPI = 72
        conversion = services.create_conversion(document=make_document(path), owner=owner, engine="dotsocr")
        assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    return Conversion.objects.get(pk=conversion.pk)


def get(url: str, **query) -> str:
    response = Client().get(url, query)
    assert response.status_code == 200, response.content
    return response.content.decode()


def test_html_is_the_rendered_markdown_with_picture_links(completed):
    response = Client().get(f"/api/v1/conversions/{completed.pk}/html")
    html = response.content.decode()

    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert (
        "script-src" not in response["Content-Security-Policy"]
        and "default-src 'none'" in response["Content-Security-Policy"]
    )
    assert html.startswith("<!DOCTYPE html>") and "<title>article.pdf</title>" in html
    assert "<h1>On Answering Like a Model</h1>" in html and "<h2>1 Introduction</h2>" in html
    assert "<strong>cells</strong>" in html and "<td>1</td>" in html
    pictures = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert len(pictures) == 2  # one per page
    assert all(
        re.fullmatch(
            rf"http://testserver/api/v1/conversions/{completed.pk}/files/article_page_\d_picture_\d+"
            r"\.jpg",
            src,
        )
        for src in pictures
    )


def test_html_embeds_or_leaves_out_pictures_as_asked(completed):
    embedded = get(f"/api/v1/conversions/{completed.pk}/html", images="embedded")
    sources = re.findall(r'<img[^>]* src="([^"]+)"', embedded)
    assert len(sources) == 2 and all(src.startswith("data:image/jpeg;base64,/9j/") for src in sources)
    assert "<img" not in get(f"/api/v1/conversions/{completed.pk}/html", images="none")
    assert Client().get(f"/api/v1/conversions/{completed.pk}/html", {"images": "inline"}).status_code == 400


def test_html_is_sanitised(completed):
    services.save_markdown_edit(
        conversion=completed,
        page_no=0,
        content=(
            'Hello <script>alert(1)</script> <a href="javascript:alert(2)">x</a> <img src="x" onerror="alert(3)">\n\n'
            '<a href="data:text/html;base64,PHNjcmlwdD4=">y</a> ![p](data:text/html;base64,PHNjcmlwdD4=)'
        ),
    )

    html = get(f"/api/v1/conversions/{completed.pk}/html")

    assert "Hello" in html
    for unsafe in ("<script", "javascript:", "onerror", "data:text/html"):
        assert unsafe not in html


def test_text_is_plain_in_reading_order(completed):
    response = Client().get(f"/api/v1/conversions/{completed.pk}/text")
    text = response.content.decode()

    assert response["Content-Type"] == "text/plain; charset=utf-8"
    first_page = text[: text.index("On Answering Like a Model", text.index("On Answering Like a Model") + 1)]
    order = [
        "Journal of Stand-in Studies",
        "On Answering Like a Model",
        "1 Introduction",
        "Layout parsing turns",
        "Boxes are in pixels",
        "Figure 1: A picture",
        "a\tb\n1\t2",
        "1 A footnote {with braces}.",
    ]
    positions = [first_page.index(part) for part in order]
    assert positions == sorted(positions)
    assert "\\frac{a}{b} = \\sum_{i=1}^{n} x_{i}\n\nBoxes" in text  # a formula is its LaTeX
    for markup in ("<", ">", "**", "# ", "![", "](", ".jpg", "$$"):
        assert markup not in text
    assert text.count("On Answering Like a Model") == 2  # both pages
    no_headers = get(f"/api/v1/conversions/{completed.pk}/text", headers_footers="false")
    assert "Journal of Stand-in Studies" not in no_headers and "On Answering Like a Model" in no_headers


def test_the_zip_holds_the_html_and_the_text_too(completed):
    response = Client().get(f"/api/v1/conversions/{completed.pk}/download.zip")
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = set(bundle.namelist())

    assert {"article.html", "article.txt", "article.md"} <= names
    html = bundle.read("article.html").decode()
    assert "<h1>On Answering Like a Model</h1>" in html
    # Pictures by bare name, which the zip holds beside the page: it works offline.
    for src in re.findall(r'<img[^>]* src="([^"]+)"', html):
        assert src in names
    assert bundle.read("article.txt").decode() == get(f"/api/v1/conversions/{completed.pk}/text")


def test_html_and_text_wait_for_completion(make_conversion):
    conversion = make_conversion()
    for route in ("html", "text"):
        response = Client().get(f"/api/v1/conversions/{conversion.pk}/{route}")
        assert response.status_code == 409 and "queued" in response.json()["detail"]
