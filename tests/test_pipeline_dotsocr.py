"""The pipeline with the dots.ocr engine against the stand-in vLLM server: pages of one
job in flight together, within the engine's budget, each checkpointed once."""

import pymupdf
import pytest

from conversions.models import Conversion
from tests.dotsocr_standin import HTTP_500, DotsOcrStandin, use_standin
from workers import pipeline

PAGES = 8


@pytest.fixture
def standin():
    with DotsOcrStandin(latency=0.3) as server:
        yield server


@pytest.fixture
def dotsocr_settings(settings, standin):
    use_standin(settings, standin, in_flight_per_server=4, threads=16)
    settings.RENDER_DPI = 72  # quick to encode; the protocol is the same
    return settings


@pytest.fixture
def eight_pages(tmp_path):
    document = pymupdf.open()
    for number in range(PAGES):
        document.new_page().insert_text((72, 72), f"Page {number + 1} of a scanned report")
    path = tmp_path / "report.pdf"
    document.save(path)
    return path


def convert(make_document, owner, path, engine):
    from conversions import services

    conversion = services.create_conversion(document=make_document(path), owner=owner, engine=engine)
    return pipeline.run_conversion(str(conversion.pk)), Conversion.objects.get(pk=conversion.pk)


def test_pages_run_concurrently_within_the_engine_budget(dotsocr_settings, standin, make_document, owner, eight_pages):
    outcome, conversion = convert(make_document, owner, eight_pages, "dotsocr")
    assert outcome == "completed", conversion.error
    assert 2 <= standin.peak_in_flight <= 4
    pages = list(conversion.pages.order_by("page_no"))
    assert [page.page_no for page in pages] == list(range(PAGES))
    assert {page.engine for page in pages} == {"dotsocr"}
    assert all(page.cells and page.markdown for page in pages)
    assert len(standin.requests) == PAGES  # each page sent once


def test_jobs_of_one_process_share_one_dots_ocr_engine(dotsocr_settings):
    """Each job builds its configuration from settings.DOTSOCR; equal configurations must
    still reach one engine, so the process keeps one in-flight budget per server."""
    from workers.ocr import engine_for

    first = engine_for("dotsocr", dotsocr=pipeline.dotsocr_config_for("dotsocr"))
    second = engine_for("dotsocr", dotsocr=pipeline.dotsocr_config_for("dotsocr"))

    assert first is second
    assert first.max_concurrency == 4


def test_auto_uses_dotsocr_when_a_server_is_configured(dotsocr_settings, standin, make_document, owner, eight_pages):
    outcome, conversion = convert(make_document, owner, eight_pages, "auto")
    assert outcome == "completed" and conversion.pages.first().engine.startswith("dotsocr")


def test_auto_uses_the_text_layer_without_a_server(dotsocr_settings, standin, make_document, owner, eight_pages):
    dotsocr_settings.DOTSOCR_CONFIGURED = False
    outcome, conversion = convert(make_document, owner, eight_pages, "auto")
    assert outcome == "completed" and conversion.pages.first().engine == "textlayer"
    assert standin.requests == []


def test_a_server_that_keeps_failing_fails_the_job_naming_a_page(
    dotsocr_settings, standin, make_document, owner, eight_pages
):
    standin.mode = HTTP_500
    outcome, conversion = convert(make_document, owner, eight_pages, "dotsocr")
    assert outcome == "failed"
    assert conversion.error.startswith("Page ") and conversion.status == "failed"
    assert not (dotsocr_settings.OUTPUT_DIR / str(conversion.pk)).exists()


def test_cancel_while_every_remaining_page_is_in_flight_stops_the_job(
    dotsocr_settings, make_document, owner, eight_pages, monkeypatch
):
    """All eight pages are in flight at once and the server answers one at a time; a
    cancel after the second answer must not wait for the other six and then complete."""
    from conversions import services

    original = pipeline.PageWriter.checkpoint

    def cancel_after_second_page(self, page, recognized):
        original(self, page, recognized)
        if self.pages_written == 2:
            services.cancel_conversion(conversion=Conversion.objects.get(pk=self.conversion.pk))

    monkeypatch.setattr(pipeline.PageWriter, "checkpoint", cancel_after_second_page)
    with DotsOcrStandin(latency=0.8, capacity=1) as one_at_a_time:  # 6 pages left: past the 3 s grace
        dotsocr_settings.DOTSOCR = {
            **dotsocr_settings.DOTSOCR,
            "base_urls": [one_at_a_time.url],
            "in_flight_per_server": 16,
            "timeout_seconds": 10,
        }
        outcome, conversion = convert(make_document, owner, eight_pages, "dotsocr")
        assert one_at_a_time.peak_in_flight == PAGES  # the whole job was in flight
    assert outcome == "cancelled"
    assert conversion.status == "cancelled" and conversion.pages_done < PAGES


def test_auto_with_a_server_records_why_each_page_went_to_dotsocr(
    dotsocr_settings, standin, make_document, owner, eight_pages
):
    outcome, conversion = convert(make_document, owner, eight_pages, "auto")
    assert outcome == "completed"
    reasons = set(conversion.pages.values_list("engine_reason", flat=True))
    assert reasons == {"auto: a dots.ocr server is configured; dots.ocr read the layout (prompt_layout_all_en)"}
    outcome, by_name = convert(make_document, owner, eight_pages, "dotsocr")
    assert set(by_name.pages.values_list("engine_reason", flat=True)) == {
        "dots.ocr read the layout (prompt_layout_all_en)"
    }
