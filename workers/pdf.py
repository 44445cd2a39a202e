"""PDF access with PyMuPDF: validate, open, render pages. No Django here.

Coordinates: cells produced by every engine use pixels of the page image rendered by
``PdfPage.render`` (as the reference dots.ocr parser's JSON pairs with its page image).
"""

import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pymupdf
from PIL import Image

PDF_MAGIC = b"%PDF-"
# The PDF header may follow a little junk; readers look in the first 1024 bytes.
MAGIC_WINDOW = 1024
# Re-render at 72 DPI above this side: the reference dots.ocr parser does the same
# (dots_ocr/utils/doc_utils.py, fitz_doc_to_image) to keep images within vLLM's limits.
MAX_RENDER_SIDE = 4500
FALLBACK_DPI = 72
# Decompressed bytes of drawing instructions one page may use: its content streams and
# every non-image stream its rendering reads (form XObjects, Type 3 glyphs, patterns,
# annotation appearances, fonts, colour profiles). A real page, even a dense CAD
# drawing with embedded CJK fonts, stays well below this; a "PDF bomb" (a few MB of
# Flate data that inflate to gigabytes) does not. See PageContentBudget.
MAX_PAGE_CONTENT_MB = 128

pymupdf.TOOLS.mupdf_display_errors(False)  # we report problems ourselves, once

# MuPDF is not thread-safe, and pages of one job are prepared from several threads when
# an engine works on pages concurrently: every call into a document holds this lock.
PYMUPDF_LOCK = threading.RLock()


class InvalidPdf(Exception):
    """The file cannot be converted; the message says why, in words for the user."""


class UnreadablePdf(InvalidPdf):
    """MuPDF cannot open the file or finds no page in it: a structural repair may recover
    pages (workers/inputs/repair.py). Not raised for encrypted files or page trees that
    loop or lie about their size, which are refused as they are."""


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
            check_page_tree(document)
            repaired = document.is_repaired
    except InvalidPdf:
        if has_end_marker:
            raise
        repaired = True
    # MuPDF silently rebuilds a damaged file; a rebuilt file that also lost its end
    # marker was cut short, and converting it would yield a result that looks whole.
    if repaired and not has_end_marker:
        raise InvalidPdf(
            "The PDF is truncated or damaged: it has no end-of-file marker and its structure had to be rebuilt."
        )
    return PdfInfo(page_count=page_count, repaired=repaired)


# What MuPDF raises for a damaged file: PyMuPDF's wrappers turn its errors into
# RuntimeError or FileDataError, its low-level bindings into FzErrorBase subclasses.
MUPDF_ERRORS = (pymupdf.FileDataError, pymupdf.mupdf.FzErrorBase, RuntimeError, ValueError)


@contextmanager
def open_pdf(path: Path) -> Iterator[pymupdf.Document]:
    """Open a PDF for reading. Raises InvalidPdf with a readable reason."""
    try:
        document = pymupdf.open(path, filetype="pdf")
    except FileNotFoundError:
        raise InvalidPdf("The uploaded file is missing from storage.") from None
    except MUPDF_ERRORS as error:
        raise UnreadablePdf(f"The PDF cannot be opened: {error}.") from None
    try:
        if document.needs_pass:
            raise InvalidPdf("The PDF is encrypted; a password is needed to open it.")
        try:
            page_count = document.page_count
        except MUPDF_ERRORS as error:  # e.g. a /Count that is not a number of pages
            raise InvalidPdf(f"The PDF's page tree is damaged: {error}.") from None
        if page_count < 1:
            raise UnreadablePdf("The PDF has no pages it can read: its page tree is missing or damaged.")
        yield document
    finally:
        document.close()


def check_page_tree(document: pymupdf.Document) -> None:
    """Find every page object, so a page tree that loops or promises more pages than it
    holds is refused at upload rather than failing the job halfway. Cheap: MuPDF maps the
    tree without reading any page's content (some 0.1 s for 10,000 pages)."""
    try:
        for number in range(document.page_count):
            document.page_xref(number)
    except MUPDF_ERRORS as error:
        raise InvalidPdf(f"The PDF's page tree is damaged: {error}.") from None


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
        return int(self.page.number)

    @property
    def zoom(self) -> float:
        return render_zoom(self.page.rect.width, self.page.rect.height, self.dpi)

    def render(self) -> pymupdf.Pixmap:
        if self._pixmap is not None:  # rendered already: no need to wait for MuPDF's lock
            return self._pixmap
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
        """The rendered page as a JPEG (baseline, 4:2:0), encoded by Pillow (libjpeg-turbo):
        some 12x faster than MuPDF's own encoder (10 against 126 ms for an A4 page at 200
        DPI), which was most of a born-digital page's cost in the worker."""
        return encode_jpeg(self.rgb_image(), quality)

    def png(self) -> bytes:
        with PYMUPDF_LOCK:
            return bytes(self.render().tobytes("png"))

    def crop_jpeg(self, bbox: tuple[int, int, int, int], quality: int = 85) -> bytes:
        """A region of the rendered page, in rendered pixels."""
        x1, y1, x2, y2 = bbox
        width, height = self.size_px
        clip = pymupdf.IRect(max(0, x1), max(0, y1), min(width, x2), min(height, y2))
        if clip.is_empty:
            raise ValueError(f"empty crop {bbox}")
        return encode_jpeg(self.rgb_image().crop((clip.x0, clip.y0, clip.x1, clip.y1)), quality)

    def rgb_image(self) -> Image.Image:
        """The rendered page as a Pillow image (a copy of the pixmap's samples, row stride
        respected: Pillow keeps RGB at 4 bytes a pixel)."""
        pixmap = self.render()
        return Image.frombuffer("RGB", (pixmap.width, pixmap.height), pixmap.samples_mv, "raw", "RGB", pixmap.stride, 1)


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    """Outside PYMUPDF_LOCK: Pillow does not call MuPDF, and releases the GIL while encoding."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def iter_pages(
    document: pymupdf.Document, dpi: int, content_limit_mb: int = MAX_PAGE_CONTENT_MB, numbers: list[int] | None = None
) -> Iterator[PdfPage]:
    """The pages in order (only ``numbers``, 0-based, when given), each checked against the
    content budget before any engine reads it. Raises InvalidPdf naming the page that
    cannot be read or is too large."""
    budget = PageContentBudget(document, limit_bytes=content_limit_mb * 1024 * 1024)
    for number in range(document.page_count) if numbers is None else numbers:
        with PYMUPDF_LOCK:
            try:
                page = document[number]
            except MUPDF_ERRORS as error:
                raise InvalidPdf(f"Page {number + 1} cannot be read: {error}.") from None
            budget.check(number)
        yield PdfPage(page=page, dpi=dpi)


# --- decompression bombs ------------------------------------------------------------------

REFERENCE = re.compile(rb"(\d+)\s+\d+\s+R\b")
# Keys that lead away from what a page draws: up the page tree, to other pages (links,
# destinations, actions, article beads), or to data no renderer reads.
NOT_DRAWN_KEYS = frozenset(
    {
        "Parent",
        "P",
        "Dest",
        "D",
        "A",
        "AA",
        "PA",
        "Next",
        "Prev",
        "First",
        "Last",
        "B",
        "Thumb",
        "Metadata",
        "PieceInfo",
        "StructParent",
        "StructParents",
        "IRT",
        "Popup",
    }
)


class PageContentBudget:
    """Refuses a page whose drawing instructions inflate past a limit, before MuPDF reads them.

    Why here: MuPDF inflates a page's content streams while it extracts text or renders
    (the text layer, the OCR render, the page JPEG); it streams them, so memory stays
    flat, but a 1 MB Flate stream of zeros is 1 GB to lex (about 7 s per pass, three
    passes per page) and a few MB of repeated operators build a text or display list
    that does not fit in memory. Pages may share one such stream, so the cost grows with
    the page count, not the file size. Nothing in the file says how large a Flate stream
    inflates, so each stream is decoded once per document through MuPDF's own filters
    (every filter MuPDF supports, chained) into nothing, stopping one byte past the
    limit: memory O(1), work O(limit) per stream and at most twice the limit per page.
    Images are left out: their size is declared, not hidden, and MuPDF decodes them
    subsampled towards the render size (a 20,000 x 20,000 px Flate image, 1.2 GB
    decoded, renders in 170 MB), though the decoding time grows with that size.
    Checked per page in the worker, not at upload: the cost is that of converting the
    page, and a bomb then fails its own job with the page named.
    """

    def __init__(self, document: pymupdf.Document, *, limit_bytes: int):
        self.document = document
        self.limit_bytes = limit_bytes
        self.pdf = pymupdf.mupdf.pdf_document_from_fz_document(document.this)
        self.xref_count = pymupdf.mupdf.pdf_xref_len(self.pdf)
        self.decoded_sizes: dict[int, int] = {}  # stream xref -> bytes, at most limit + 1
        self.links: dict[int, tuple[bool, list[int]]] = {}  # xref -> (drawn stream?, references)

    def check(self, page_number: int) -> None:
        total = 0
        for xref in self.streams_drawn_by(self.document.page_xref(page_number)):
            total += self.decoded_size(xref)
            if total > self.limit_bytes:
                limit_mb = self.limit_bytes // (1024 * 1024)
                raise InvalidPdf(
                    f"Page {page_number + 1}: its drawing instructions inflate to more than {limit_mb} MB "
                    f"when decompressed (the limit is {limit_mb} MB); the file looks like a decompression bomb."
                )

    def streams_drawn_by(self, page_xref: int) -> Iterator[int]:
        """Every non-image stream reachable from the page, each once."""
        seen, pending = {page_xref}, [page_xref, *self.inherited_resources(page_xref)]
        while pending:
            xref = pending.pop()
            drawn_stream, references = self.links_of(xref, is_page=xref == page_xref)
            if drawn_stream:
                yield xref
            for child in references:
                if child not in seen:
                    seen.add(child)
                    pending.append(child)

    def inherited_resources(self, page_xref: int) -> list[int]:
        """/Resources may sit on an ancestor in the page tree (PDF 32000-1, 7.7.3.4)."""
        if self.document.xref_get_key(page_xref, "Resources")[0] != "null":
            return []
        xref, hops = page_xref, 0
        while hops < 64:  # a looping tree was refused at upload; this only bounds the walk
            kind, value = self.document.xref_get_key(xref, "Parent")
            if kind != "xref":
                return []
            xref, hops = int(value.split()[0]), hops + 1
            kind, value = self.document.xref_get_key(xref, "Resources")
            if kind != "null":
                return [int(found) for found in REFERENCE.findall(value.encode())]
        return []

    def links_of(self, xref: int, *, is_page: bool) -> tuple[bool, list[int]]:
        if is_page:  # not cached: reached from elsewhere, a page is a dead end
            return self.read_links(xref, is_page=True)
        if xref not in self.links:
            self.links[xref] = self.read_links(xref, is_page=False)
        return self.links[xref]

    def read_links(self, xref: int, *, is_page: bool) -> tuple[bool, list[int]]:
        if not 0 < xref < self.xref_count:
            return False, []
        try:
            return self.parse_links(xref, is_page=is_page)
        except MUPDF_ERRORS:
            return False, []  # an object MuPDF cannot parse is not drawn either

    def parse_links(self, xref: int, *, is_page: bool) -> tuple[bool, list[int]]:
        """The references in the object's values (except under NOT_DRAWN_KEYS at its top
        level), found by walking its arrays and dictionaries with MuPDF's object API: the
        scan of a one-page invoice takes 0.5 ms this way, 1.2 ms through one
        ``Document.xref_get_key`` per key (about as long as extracting the page's text)."""
        mupdf = pymupdf.mupdf
        obj = mupdf.pdf_load_object(self.pdf, xref)
        if mupdf.pdf_is_dict(obj):
            kind = mupdf.pdf_to_name(mupdf.pdf_dict_gets(obj, "Type"))
            if not is_page and kind in ("Page", "Pages"):
                return False, []  # another page, reached through a link: not drawn here
            if kind == "Metadata" or mupdf.pdf_to_name(mupdf.pdf_dict_gets(obj, "Subtype")) == "Image":
                return False, []
            pending = [
                mupdf.pdf_dict_get_val(obj, index)
                for index in range(mupdf.pdf_dict_len(obj))
                if mupdf.pdf_to_name(mupdf.pdf_dict_get_key(obj, index)) not in NOT_DRAWN_KEYS
            ]
        else:  # an array or other non-dictionary object
            pending = [obj]
        references = []
        while pending:
            value = pending.pop()
            if mupdf.pdf_is_indirect(value):
                references.append(mupdf.pdf_to_num(value))
            elif mupdf.pdf_is_array(value):
                pending.extend(mupdf.pdf_array_get(value, index) for index in range(mupdf.pdf_array_len(value)))
            elif mupdf.pdf_is_dict(value):
                pending.extend(mupdf.pdf_dict_get_val(value, index) for index in range(mupdf.pdf_dict_len(value)))
        return bool(mupdf.pdf_obj_num_is_stream(self.pdf, xref)), references

    def decoded_size(self, xref: int) -> int:
        if xref not in self.decoded_sizes:
            try:
                stream = pymupdf.mupdf.pdf_open_stream_number(self.pdf, xref)
                self.decoded_sizes[xref] = pymupdf.mupdf.fz_skip(stream, self.limit_bytes + 1)
            except MUPDF_ERRORS:
                self.decoded_sizes[xref] = 0  # unreadable: MuPDF skips it when drawing, too
        return self.decoded_sizes[xref]
