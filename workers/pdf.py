"""PDF access with PyMuPDF: validate, open, render pages. No Django here.

Coordinates: cells produced by every engine use pixels of the page image rendered by
``PdfPage.render`` (as the reference dots.ocr parser's JSON pairs with its page image).
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pymupdf

PDF_MAGIC = b"%PDF-"
# The PDF header may follow a little junk; readers look in the first 1024 bytes.
MAGIC_WINDOW = 1024
# Re-render at 72 DPI above this side: the reference dots.ocr parser does the same
# (dots_ocr/utils/doc_utils.py, fitz_doc_to_image) to keep images within vLLM's limits.
MAX_RENDER_SIDE = 4500
FALLBACK_DPI = 72

pymupdf.TOOLS.mupdf_display_errors(False)  # we report problems ourselves, once

# MuPDF is not thread-safe, and pages of one job are prepared from several threads when
# an engine works on pages concurrently: every call into a document holds this lock.
PYMUPDF_LOCK = threading.RLock()


class InvalidPdf(Exception):
    """The file cannot be converted; the message says why, in words for the user."""


@dataclass(frozen=True)
class PdfInfo:
    page_count: int
    repaired: bool


def inspect_pdf(path: Path) -> PdfInfo:
    """Check that ``path`` is a readable, unencrypted PDF with pages. Raises InvalidPdf."""
    with open(path, "rb") as handle:
        head = handle.read(MAGIC_WINDOW)
        if PDF_MAGIC not in head:
            raise InvalidPdf("The file is not a PDF (no %PDF- header).")
        handle.seek(max(0, path.stat().st_size - 2048))
        has_end_marker = b"%%EOF" in handle.read()
    try:
        with open_pdf(path) as document:
            page_count = document.page_count
            repaired = document.is_repaired
    except InvalidPdf:
        if has_end_marker:
            raise
        repaired = True
    # MuPDF silently rebuilds a damaged file; a rebuilt file that also lost its end
    # marker was cut short, and converting it would yield a result that looks whole.
    if repaired and not has_end_marker:
        raise InvalidPdf("The PDF is truncated or damaged: it has no end-of-file marker and its structure had to be rebuilt.")
    return PdfInfo(page_count=page_count, repaired=repaired)


@contextmanager
def open_pdf(path: Path) -> Iterator[pymupdf.Document]:
    """Open a PDF for reading. Raises InvalidPdf with a readable reason."""
    try:
        document = pymupdf.open(path, filetype="pdf")
    except (pymupdf.FileDataError, RuntimeError, ValueError) as error:
        raise InvalidPdf(f"The PDF cannot be opened: {error}.") from None
    except FileNotFoundError:
        raise InvalidPdf("The uploaded file is missing from storage.") from None
    try:
        if document.needs_pass:
            raise InvalidPdf("The PDF is encrypted; a password is needed to open it.")
        if document.page_count < 1:
            raise InvalidPdf("The PDF has no pages.")
        yield document
    finally:
        document.close()


def render_zoom(width_pt: float, height_pt: float, dpi: int) -> float:
    """The scale from PDF points to rendered pixels for a page of this size."""
    zoom = dpi / 72
    if max(width_pt, height_pt) * zoom > MAX_RENDER_SIDE:
        zoom = FALLBACK_DPI / 72
    # Giant pages (e.g. 20,000 pt posters) stay within the cap even at 72 DPI.
    if max(width_pt, height_pt) * zoom > MAX_RENDER_SIDE:
        zoom = MAX_RENDER_SIDE / max(width_pt, height_pt)
    return zoom


@dataclass
class PdfPage:
    """One page of an open PDF, with its rendering cached."""

    page: pymupdf.Page
    dpi: int
    _pixmap: pymupdf.Pixmap | None = field(default=None, repr=False)

    @property
    def number(self) -> int:
        return self.page.number

    @property
    def zoom(self) -> float:
        return render_zoom(self.page.rect.width, self.page.rect.height, self.dpi)

    def render(self) -> pymupdf.Pixmap:
        with PYMUPDF_LOCK:
            if self._pixmap is None:
                matrix = pymupdf.Matrix(self.zoom, self.zoom)
                self._pixmap = self.page.get_pixmap(matrix=matrix, alpha=False, colorspace=pymupdf.csRGB)
            return self._pixmap

    @property
    def size_px(self) -> tuple[int, int]:
        pixmap = self.render()
        return pixmap.width, pixmap.height

    def jpeg(self, quality: int = 85) -> bytes:
        with PYMUPDF_LOCK:
            return self.render().tobytes("jpeg", jpg_quality=quality)

    def png(self) -> bytes:
        with PYMUPDF_LOCK:
            return self.render().tobytes("png")

    def crop_jpeg(self, bbox: tuple[int, int, int, int], quality: int = 85) -> bytes:
        """A region of the rendered page, in rendered pixels."""
        x1, y1, x2, y2 = bbox
        width, height = self.size_px
        clip = pymupdf.IRect(max(0, x1), max(0, y1), min(width, x2), min(height, y2))
        if clip.is_empty:
            raise ValueError(f"empty crop {bbox}")
        with PYMUPDF_LOCK:
            region = pymupdf.Pixmap(pymupdf.csRGB, clip, False)
            region.copy(self.render(), clip)
            return region.tobytes("jpeg", jpg_quality=quality)


def iter_pages(document: pymupdf.Document, dpi: int) -> Iterator[PdfPage]:
    for number in range(document.page_count):
        with PYMUPDF_LOCK:
            page = document[number]
        yield PdfPage(page=page, dpi=dpi)
