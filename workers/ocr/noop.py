"""A test engine that reads nothing: one Text cell per page, at once. No Django here.

It exists so that benchmarks (bench/) measure the queue and the pipeline around an
engine, not OCR: it never renders the page (the cell's box is the page's size in pixels
at the render DPI, computed from the page's rectangle) and never looks at its content.
"""

from workers.ocr.base import Cell, PageOcr
from workers.pdf import PdfPage


class NoopEngine:
    name = "noop"

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        zoom = page.zoom
        width, height = round(page.page.rect.width * zoom), round(page.page.rect.height * zoom)
        cell = Cell(bbox=(0, 0, width, height), category="Text", text=f"Page {page.number + 1}")
        return PageOcr(cells=[cell], engine=self.name)
