"""CPU OCR for scanned pages (RapidOCR, models inside the wheel) and `auto`'s choice per page."""

import pymupdf
import pytest

from tests.conftest import ONE_PAGE
from workers.ocr.auto import AutoEngine, has_real_text
from workers.ocr.rapidocr import RapidOcrEngine, lines_to_cells
from workers.pdf import PdfPage, open_pdf

SCANNED_WORDS = ["Quarterly", "report", "shipping", "invoices"]


def scanned_pdf(path, lines=("Quarterly report", "All shipping invoices were paid on time.")):
    """A page that is only a picture of text, as a scanner makes it."""
    source = pymupdf.open()
    page = source.new_page(width=420, height=300)
    for number, line in enumerate(lines):
        page.insert_text((30, 60 + number * 40), line, fontsize=18)
    picture = page.get_pixmap(dpi=150)
    scanned = pymupdf.open()
    scanned.new_page(width=420, height=300).insert_image(pymupdf.Rect(0, 0, 420, 300), pixmap=picture)
    scanned.save(path)
    return path


def test_rapidocr_reads_a_scanned_page(tmp_path):
    with open_pdf(scanned_pdf(tmp_path / "scan.pdf")) as document:
        result = RapidOcrEngine().recognize(PdfPage(page=document[0], dpi=200), prompt_mode="prompt_ocr")
    text = " ".join(cell.text for cell in result.cells)
    assert result.engine == "rapidocr"
    for word in SCANNED_WORDS:
        assert word in text
    width, height = 420 * 200 / 72, 300 * 200 / 72
    assert all(
        0 <= cell.bbox[0] < cell.bbox[2] <= width + 1 and 0 <= cell.bbox[1] < cell.bbox[3] <= height + 1
        for cell in result.cells
    )


def test_auto_reads_text_pages_from_the_text_layer_and_scans_with_ocr(tmp_path):
    engine = AutoEngine()
    with open_pdf(ONE_PAGE) as document:
        page = PdfPage(page=document[0], dpi=200)
        assert has_real_text(page)
        assert engine.recognize(page, prompt_mode="prompt_layout_all_en").engine == "textlayer"
    with open_pdf(scanned_pdf(tmp_path / "scan.pdf")) as document:
        page = PdfPage(page=document[0], dpi=200)
        assert not has_real_text(page)
        assert engine.recognize(page, prompt_mode="prompt_layout_all_en").engine == "rapidocr"


def test_a_picture_without_text_keeps_its_picture_cell(tmp_path):
    document = pymupdf.open()
    page = document.new_page(width=200, height=200)
    photo = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 50, 50), False)
    photo.set_rect(photo.irect, (40, 120, 200))
    page.insert_image(pymupdf.Rect(20, 20, 180, 180), pixmap=photo)
    document.save(tmp_path / "photo.pdf")
    with open_pdf(tmp_path / "photo.pdf") as opened:
        result = AutoEngine().recognize(PdfPage(page=opened[0], dpi=72), prompt_mode="prompt_layout_all_en")
    assert result.engine == "rapidocr-no-text"
    assert [cell.category for cell in result.cells] == ["Picture"]


@pytest.mark.parametrize(
    "lines,expected",
    [
        # two lines of one paragraph, then a separate paragraph further down
        (
            [
                [[[10, 10], [200, 10], [200, 30], [10, 30]], "First line of", 0.9],
                [[[10, 34], [190, 34], [190, 54], [10, 54]], "a paragraph.", 0.9],
                [[[10, 120], [150, 120], [150, 140], [10, 140]], "Another one.", 0.9],
            ],
            [((10, 10, 200, 54), "First line of a paragraph."), ((10, 120, 150, 140), "Another one.")],
        ),
        ([], []),
    ],
)
def test_ocr_lines_are_grouped_into_paragraphs(lines, expected):
    cells = lines_to_cells(lines)
    assert [(cell.bbox, cell.text) for cell in cells] == expected
    assert all(cell.category == "Text" for cell in cells)


def test_scanned_pdf_converts_through_the_pipeline_with_auto(make_document, owner, tmp_path, settings):
    from conversions import services
    from conversions.models import Conversion
    from workers import pipeline

    settings.DOTSOCR_CONFIGURED = False
    conversion = services.create_conversion(document=make_document(scanned_pdf(tmp_path / "scan.pdf")), owner=owner)
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    page = Conversion.objects.get(pk=conversion.pk).pages.get()
    assert page.engine == "rapidocr" and "shipping invoices" in page.markdown
