"""`auto` without a dots.ocr server: per page, the text layer when the page has real
text, OCR when it is a scanned image. No Django here."""

import pymupdf

from workers.ocr.base import PageOcr
from workers.ocr.rapidocr import RapidOcrEngine
from workers.ocr.textlayer import TextLayerEngine
from workers.pdf import PYMUPDF_LOCK, PdfPage

# Fewer characters than this is no text layer worth trusting (a stray page number).
MIN_TEXT_CHARS = 16
# A page mostly covered by images with little text is a scan with an OCR'd-over layer
# at best (or a caption); reading the image gives the full text.
SCAN_IMAGE_SHARE = 0.5
SCAN_MAX_TEXT_CHARS = 200


class AutoEngine:
    name = "auto"

    def __init__(self):
        self.textlayer = TextLayerEngine()
        self.ocr = RapidOcrEngine()

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        if has_real_text(page):
            return self.textlayer.recognize(page, prompt_mode=prompt_mode)
        result = self.ocr.recognize(page, prompt_mode=prompt_mode)
        if result.cells:
            return result
        # No text anywhere: keep what the text layer sees (pictures), say so in the path.
        fallback = self.textlayer.recognize(page, prompt_mode=prompt_mode)
        return PageOcr(cells=fallback.cells, engine="rapidocr-no-text")


def has_real_text(page: PdfPage) -> bool:
    with PYMUPDF_LOCK:
        characters = len("".join(page.page.get_text("text").split()))
        page_area = abs(page.page.rect) or 1
        image_area = sum(abs(pymupdf.Rect(info["bbox"]) & page.page.rect) for info in page.page.get_image_info())
    if characters < MIN_TEXT_CHARS:
        return False
    return not (image_area / page_area > SCAN_IMAGE_SHARE and characters < SCAN_MAX_TEXT_CHARS)
