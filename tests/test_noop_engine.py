"""The no-op engine used by the benchmarks, through the real pipeline and API."""

from conversions.models import Conversion
from tests.conftest import FOUR_PAGES, ONE_PAGE, published, upload_of
from workers import pipeline
from workers.ocr import engine_for
from workers.ocr.noop import NoopEngine
from workers.pdf import iter_pages, open_pdf


def test_noop_engine_gives_one_text_cell_the_size_of_the_page_without_rendering():
    with open_pdf(ONE_PAGE) as document:
        page = next(iter_pages(document, 144))
        result = NoopEngine().recognize(page, prompt_mode="prompt_layout_all_en")
        assert page._pixmap is None  # it never rendered the page
        width, height = page.size_px
    assert result.engine == "noop"
    assert [cell.category for cell in result.cells] == ["Text"]
    assert result.cells[0].bbox == (0, 0, width, height)
    assert result.cells[0].text == "Page 1"


def test_engine_for_knows_noop():
    assert isinstance(engine_for("noop"), NoopEngine)


def test_noop_job_completes_through_the_pipeline_with_one_checkpoint_per_page(make_conversion, settings):
    conversion = make_conversion(FOUR_PAGES, engine="noop")
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    done = Conversion.objects.get(pk=conversion.pk)
    assert (done.status, done.progress, done.pages_done) == ("completed", 100, 4)
    pages = list(done.pages.order_by("page_no"))
    assert [(page.page_no, page.engine, page.markdown) for page in pages] == [
        (number, "noop", f"Page {number + 1}") for number in range(4)
    ]
    stem = "pdflatex-4-pages"
    assert (published(conversion) / f"{stem}.md").read_text() == ("Page 1\n\nPage 2\n\nPage 3\n\nPage 4\n")


def test_api_accepts_noop_as_an_engine(client, db):
    response = client.post("/api/v1/conversions", {"file": upload_of(ONE_PAGE), "engine": "noop"})
    assert response.status_code == 201, response.json()
    assert response.json()["engine"] == "noop"
