"""The HTML pages and the file downloads they link to (in-process)."""

import io
import zipfile

import pymupdf
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from conversions import services
from tests.conftest import FOUR_PAGES_TEXT, WITH_IMAGE
from workers import pipeline

HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}


@pytest.fixture
def browser(db):
    return Client()


@pytest.fixture
def completed(make_conversion):
    conversion = make_conversion()
    pipeline.run_conversion(str(conversion.pk))
    return conversion


def test_dashboard_lists_conversions_and_documents(browser, make_conversion):
    conversion = make_conversion()
    page = browser.get("/", **HTML)
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/conversions/{conversion.pk}/" in html and "pdflatex-4-pages.pdf" in html
    assert 'id="dropzone"' in html and "prompt_layout_all_en" in html and "Convert again" in html


def test_root_answers_json_to_api_clients(browser):
    response = browser.get("/", HTTP_ACCEPT="application/json")
    assert response.json()["message"]


def test_conversion_page_shows_progress_and_subscribes(browser, make_conversion):
    conversion = make_conversion()
    html = browser.get(f"/conversions/{conversion.pk}/", **HTML).content.decode()
    assert '<progress id="progress" max="100" value="0"' in html
    assert "/ws/v1/conversions/" in html and str(conversion.pk) in html
    assert html.count('<li id="page-') == 4


def test_completed_page_shows_page_images_beside_rendered_markdown(browser, completed):
    html = browser.get(f"/conversions/{completed.pk}/", **HTML).content.decode()
    assert html.count('class="result"') == 4
    assert f"/api/v1/conversions/{completed.pk}/pages/0/image" in html
    assert f"<p>{FOUR_PAGES_TEXT}" in html  # rendered, not raw
    assert "download.zip" in html


def test_unknown_conversion_page_is_a_404(browser):
    response = browser.get("/conversions/00000000-0000-0000-0000-000000000000/", **HTML)
    assert response.status_code == 404


def test_page_image_is_a_jpeg(browser, completed):
    response = browser.get(f"/api/v1/conversions/{completed.pk}/pages/1/image")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content)[:2] == b"\xff\xd8"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_zip_holds_every_output_file(browser, completed):
    response = browser.get(f"/api/v1/conversions/{completed.pk}/download.zip")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="pdflatex-4-pages.zip"'
    names = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()
    # Document files: .md, _nohf.md, .jsonl, and (issue 17) .html and .txt; four per page.
    assert "pdflatex-4-pages.md" in names and "pdflatex-4-pages_page_3.jpg" in names and len(names) == 5 + 4 * 4


@pytest.mark.parametrize("name", ["../../secret_key", "..%2F..%2Fsecret_key", "nothing.md"])
def test_output_file_names_outside_the_folder_are_404(browser, completed, name):
    response = browser.get(f"/api/v1/conversions/{completed.pk}/files/{name}")
    assert response.status_code == 404


def test_files_of_an_unfinished_conversion_are_404(browser, make_conversion):
    conversion = make_conversion()
    response = browser.get(f"/api/v1/conversions/{conversion.pk}/pages/0/image")
    assert response.status_code == 404 and "no outputs" in response.json()["detail"]


def test_picture_links_are_served_from_the_outputs(browser, make_conversion):
    conversion = make_conversion(WITH_IMAGE)
    pipeline.run_conversion(str(conversion.pk))
    html = browser.get(f"/conversions/{conversion.pk}/results", **HTML).content.decode()
    url = html.split(f'src="/api/v1/conversions/{conversion.pk}/files/')[1].split('"')[0]
    assert "_picture_" in url
    assert browser.get(f"/api/v1/conversions/{conversion.pk}/files/{url}").status_code == 200


def test_script_in_a_pdf_is_shown_as_text_never_run(browser, owner, settings):
    document = pymupdf.open()
    document.new_page().insert_text((72, 72), '<script>alert("pwned")</script> <img src=x onerror=alert(1)>')
    upload = SimpleUploadedFile("xss.pdf", document.tobytes(), content_type="application/pdf")
    pdf = services.create_document(owner=owner, upload=upload, max_pages=settings.MAX_PAGES)
    conversion = services.create_conversion(document=pdf, owner=owner)
    pipeline.run_conversion(str(conversion.pk))
    html = browser.get(f"/conversions/{conversion.pk}/results", **HTML).content.decode()
    rendered = html.split('class="rendered">')[1].split("</div>")[0]
    assert "<script" not in rendered and "onerror" not in rendered
    assert "alert" in html  # the text itself is still there, escaped
