"""The worker pipeline run in-process against the real database and real PDFs."""

import json

from conversions import services
from conversions.models import Conversion, PageResult
from tests.conftest import FOUR_PAGES, FOUR_PAGES_TEXT, WITH_IMAGE, published, stored
from workers import pipeline
from workers.ocr.base import PageOcr


def finished(conversion):
    return Conversion.objects.get(pk=conversion.pk)


def test_completed_job_has_one_checkpoint_per_page_and_progress_100(make_conversion):
    conversion = make_conversion(FOUR_PAGES)
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    done = finished(conversion)
    assert done.status == "completed"
    assert (done.progress, done.pages_done, done.pages_total) == (100, 4, 4)
    assert done.message == "Conversion completed successfully"
    assert list(done.pages.values_list("page_no", flat=True)) == [0, 1, 2, 3]
    assert FOUR_PAGES_TEXT in done.pages.get(page_no=0).markdown


def test_outputs_use_the_original_apps_file_names(make_conversion, settings):
    conversion = make_conversion(FOUR_PAGES)
    pipeline.run_conversion(str(conversion.pk))
    output = published(conversion)
    stem = "pdflatex-4-pages"
    expected = {f"{stem}.md", f"{stem}_nohf.md", f"{stem}.jsonl"}
    for page in range(4):
        name = f"{stem}_page_{page}"
        expected |= {f"{name}.jpg", f"{name}.json", f"{name}.md", f"{name}_nohf.md"}
    assert expected <= {path.name for path in output.iterdir()}
    assert FOUR_PAGES_TEXT in (output / f"{stem}.md").read_text()
    lines = (output / f"{stem}.jsonl").read_text().splitlines()
    assert [json.loads(line)["page_no"] for line in lines] == [0, 1, 2, 3]
    cells = json.loads((output / f"{stem}_page_0.json").read_text())
    assert all(set(cell) == {"bbox", "category", "text"} for cell in cells)
    assert (output / f"{stem}_page_0.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert not (settings.STAGING_DIR / str(conversion.pk)).exists()
    assert finished(conversion).output_dir.startswith(f"outputs/{conversion.pk}/")  # a storage prefix


def test_original_layout_points_at_the_latest_conversion_of_a_name(make_conversion, settings):
    first = make_conversion(FOUR_PAGES)
    pipeline.run_conversion(str(first.pk))
    second = make_conversion(FOUR_PAGES)
    pipeline.run_conversion(str(second.pk))
    by_stem = settings.OUTPUT_BY_STEM_DIR
    assert (by_stem / "pdflatex-4-pages").resolve() == published(second)
    assert (by_stem / "pdflatex-4-pages" / "pdflatex-4-pages_page_3_nohf.md").exists()
    assert json.loads((by_stem / "pdflatex-4-pages.jsonl").read_text().splitlines()[0])["page_no"] == 0


def test_pictures_are_cropped_to_files_and_linked(make_conversion, settings):
    conversion = make_conversion(WITH_IMAGE)
    pipeline.run_conversion(str(conversion.pk))
    page = finished(conversion).pages.get(page_no=0)
    assert any(cell["category"] == "Picture" for cell in page.cells)
    picture = next(name for name in published(conversion).iterdir() if "_picture_" in name.name)
    assert f"![]({picture.name})" in page.markdown
    assert picture.read_bytes()[:2] == b"\xff\xd8"


def test_resumed_job_skips_checkpointed_pages(make_conversion, settings):
    conversion = make_conversion(FOUR_PAGES)
    running = services.claim_conversion(conversion_id=conversion.pk, worker_id="crashed-worker")
    services.checkpoint_page(
        conversion=running,
        page_no=0,
        page=PageOcr(cells=[], engine="earlier-attempt"),
        markdown="page zero from the first attempt",
        markdown_nohf="page zero from the first attempt",
        duration_ms=5,
    )
    services.release_conversion(conversion=running)

    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    done = finished(conversion)
    assert done.attempts == 2 and done.pages.count() == 4
    assert done.pages.get(page_no=0).engine == "earlier-attempt"
    combined = (published(conversion) / "pdflatex-4-pages.md").read_text()
    assert combined.startswith("page zero from the first attempt")
    assert (published(conversion) / "pdflatex-4-pages_page_0.jpg").exists()


def test_damaged_stored_file_fails_the_job_with_a_reason_and_no_output(make_conversion, settings):
    conversion = make_conversion(FOUR_PAGES)
    with open(stored(conversion.document.stored_path), "wb") as handle:
        handle.write(b"%PDF-1.4\nthis is not a pdf any more")
    assert pipeline.run_conversion(str(conversion.pk)) == "failed"
    failed = finished(conversion)
    assert failed.status == "failed"
    assert "PDF" in failed.error and failed.message.startswith("Conversion failed: ")
    assert not (settings.OUTPUT_DIR / str(conversion.pk)).exists()


def test_engine_failure_names_the_page(make_conversion, settings, monkeypatch):
    from workers.ocr import EngineError
    from workers.ocr.textlayer import TextLayerEngine

    original = TextLayerEngine.recognize

    def fail_on_third_page(self, page, *, prompt_mode):
        if page.number == 2:
            raise EngineError("the engine could not read this page")
        return original(self, page, prompt_mode=prompt_mode)

    monkeypatch.setattr(TextLayerEngine, "recognize", fail_on_third_page)
    conversion = make_conversion(FOUR_PAGES)
    assert pipeline.run_conversion(str(conversion.pk)) == "failed"
    failed = finished(conversion)
    assert failed.error == "Page 3: the engine could not read this page"
    assert failed.pages_done == 2
    assert not (settings.OUTPUT_DIR / str(conversion.pk)).exists()


def test_unexpected_crash_fails_the_job_instead_of_leaving_it_running(make_conversion, monkeypatch):
    from workers.ocr.textlayer import TextLayerEngine

    def crash(self, page, *, prompt_mode):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(TextLayerEngine, "recognize", crash)
    conversion = make_conversion(FOUR_PAGES)
    assert pipeline.run_conversion(str(conversion.pk)) == "failed"
    assert finished(conversion).error == "Internal error: ZeroDivisionError: boom"


def test_cancel_requested_stops_before_the_next_page(make_conversion, monkeypatch):
    original = pipeline.PageWriter.checkpoint

    def cancel_after_second_page(self, page, recognized):
        original(self, page, recognized)
        if page.number == 1:
            services.cancel_conversion(conversion=Conversion.objects.get(pk=conversion.pk))

    monkeypatch.setattr(pipeline.PageWriter, "checkpoint", cancel_after_second_page)
    conversion = make_conversion(FOUR_PAGES)
    assert pipeline.run_conversion(str(conversion.pk)) == "cancelled"
    cancelled = finished(conversion)
    assert cancelled.status == "cancelled"
    assert PageResult.objects.filter(conversion=conversion).count() == 2


def test_nul_characters_from_an_engine_are_not_stored(make_conversion):
    """PostgreSQL text cannot hold NUL; a page whose text carries one still checkpoints."""
    from workers.ocr.base import Cell, PageOcr

    conversion = make_conversion(FOUR_PAGES)
    services.claim_next(worker_id="test:1")
    running = Conversion.objects.get(pk=conversion.pk)
    page = PageOcr(cells=[Cell(bbox=(0, 0, 10, 10), category="Text", text="a\x00b")], engine="test")
    services.checkpoint_page(
        conversion=running, page_no=0, page=page, markdown="a\x00b", markdown_nohf="a\x00b", duration_ms=1
    )
    stored = PageResult.objects.get(conversion=conversion, page_no=0)
    assert stored.markdown == "ab" and stored.cells[0]["text"] == "ab"
