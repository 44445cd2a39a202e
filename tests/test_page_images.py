"""The page image and picture crops (workers/pdf.py): JPEGs of the rendered page, encoded
outside MuPDF's lock."""

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pymupdf
from PIL import Image, ImageChops, ImageStat

from tests.conftest import ONE_PAGE
from workers.pdf import PYMUPDF_LOCK, PdfPage, open_pdf


def pixmap_image(pixmap: pymupdf.Pixmap, box=None) -> Image.Image:
    image = Image.frombytes("RGB", (pixmap.width, pixmap.height), pixmap.samples)
    return image.crop(box) if box else image


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(first, second)).mean) / 3


def test_the_page_jpeg_is_the_rendered_page():
    with open_pdf(ONE_PAGE) as document:
        page = PdfPage(page=document[0], dpi=100)
        decoded = Image.open(io.BytesIO(page.jpeg()))
        assert decoded.format == "JPEG" and decoded.size == page.size_px
        assert mean_difference(decoded.convert("RGB"), pixmap_image(page.render())) < 3


def test_a_picture_crop_is_that_region_of_the_rendered_page():
    with open_pdf(ONE_PAGE) as document:
        page = PdfPage(page=document[0], dpi=100)
        width, height = page.size_px
        box = (10, 20, width // 2, height // 3)
        decoded = Image.open(io.BytesIO(page.crop_jpeg(box)))
        assert decoded.size == (box[2] - box[0], box[3] - box[1])
        assert mean_difference(decoded.convert("RGB"), pixmap_image(page.render(), box)) < 3
        # Clamped to the page.
        assert Image.open(io.BytesIO(page.crop_jpeg((-50, -50, 10**6, 10**6)))).size == (width, height)


def test_a_rendered_page_is_encoded_while_another_thread_holds_mupdfs_lock():
    """Page threads of one job share PYMUPDF_LOCK: encoding a JPEG (no MuPDF call) must not
    wait for it."""
    with open_pdf(ONE_PAGE) as document:
        page = PdfPage(page=document[0], dpi=72)
        page.render()
        holding, release = threading.Event(), threading.Event()

        def hold_the_lock():
            with PYMUPDF_LOCK:
                holding.set()
                release.wait()

        with ThreadPoolExecutor(2) as pool:
            holder = pool.submit(hold_the_lock)
            assert holding.wait(30)
            encoding = pool.submit(lambda: (page.jpeg(), page.crop_jpeg((0, 0, 20, 20))))
            try:
                image, crop = encoding.result(timeout=60)  # a deadlock bound, not a speed limit
            finally:
                release.set()
            holder.result()
        assert image.startswith(b"\xff\xd8") and crop.startswith(b"\xff\xd8")
