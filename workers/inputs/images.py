"""Images as pages: checked at upload (frames, pixel cap, decompression bombs), turned into
a PDF in the worker (one page per frame) so they take the same path as a PDF's pages.

Page size: the image's pixels at the worker's render DPI (``width_px * 72 / dpi`` points),
so the page renders back at the image's own resolution, within the same 4500 px cap as
any PDF page (workers/pdf.py, render_zoom). EXIF orientation is applied (Pillow's
ImageOps.exif_transpose), so a photo taken sideways reads upright.
"""

import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy
import pymupdf
from PIL import Image, ImageOps, UnidentifiedImageError

from workers.inputs.errors import InvalidInput

# Formats whose every frame is a page; the others (GIF, animated WebP) give their first.
MULTI_PAGE_FORMATS = {"TIFF"}
# What Pillow raises for a file it cannot read: unknown or damaged data, a truncated
# file, a header with impossible values.
PILLOW_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
# Image.MAX_IMAGE_PIXELS is process-wide; upload requests open images from several threads.
_PILLOW_LIMIT_LOCK = threading.Lock()
HIGH_BIT_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I", "F"}


class InvalidImage(InvalidInput):
    """The image cannot be converted (damaged, too large, a decompression bomb)."""


@dataclass(frozen=True)
class ImageInfo:
    page_count: int
    width: int  # of the first frame, in pixels
    height: int


def inspect_image(path: Path, *, label: str, max_pixels: int) -> ImageInfo:
    """Count the pages of an image and refuse one that cannot become pages.

    Reads headers only (no pixel data): cheap enough for the upload request. Raises
    InvalidImage when Pillow cannot read it, or when a frame has more than
    ``max_pixels`` pixels (a likely decompression bomb).
    """
    try:
        with _open(path) as image:
            width, height = image.size
            frames = frame_count(image)
            for number in range(frames):
                image.seek(number)
                check_pixels(image, number, frames, max_pixels)
    except PILLOW_ERRORS as error:
        raise InvalidImage(f"The {label} image cannot be read: {reason(error)}.") from None
    return ImageInfo(page_count=frames, width=width, height=height)


def image_to_pdf(source: Path, target: Path, *, dpi: int, max_pixels: int) -> Path:
    """Write ``source``'s pages (frames) to a new PDF at ``target``. Raises InvalidImage."""
    document = pymupdf.open()
    try:
        with _open(source) as image:
            frames = frame_count(image)
            for number in range(frames):
                image.seek(number)
                check_pixels(image, number, frames, max_pixels)
                add_page(document, page_image(image), dpi)
        document.save(target, garbage=0, deflate=False)
    except PILLOW_ERRORS as error:
        raise InvalidImage(f"The image cannot be read: {reason(error)}.") from None
    finally:
        document.close()
    return target


def _open(path: Path) -> Image.Image:
    # Pillow's own bomb check (MAX_IMAGE_PIXELS, a process-wide setting) would warn or
    # raise with its own numbers; check_pixels applies ours, per frame, with a reason.
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def frame_count(image: Image.Image) -> int:
    return getattr(image, "n_frames", 1) if image.format in MULTI_PAGE_FORMATS else 1


def check_pixels(image: Image.Image, number: int, frames: int, max_pixels: int) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage(f"{where(number, frames)}has no pixels ({width} x {height}).")
    if width * height > max_pixels:
        raise InvalidImage(
            f"{where(number, frames)}is {width} x {height} pixels ({width * height / 1e6:.1f} megapixels); the limit "
            f"is {max_pixels / 1e6:.1f} megapixels (MAX_IMAGE_PIXELS). Refused as a possible decompression bomb."
        )


def where(number: int, frames: int) -> str:
    return f"Page {number + 1} of the image " if frames > 1 else "The image "


def reason(error: Exception) -> str:
    return str(error).rstrip(".") or type(error).__name__


def page_image(frame: Image.Image) -> Image.Image:
    """The frame upright, as 8-bit RGB or grey (what every engine reads)."""
    frame.load()
    upright = ImageOps.exif_transpose(frame) or frame
    if upright.mode in ("L", "RGB"):
        return upright
    if upright.mode == "1":
        return upright.convert("L")
    if upright.mode in HIGH_BIT_DEPTH_MODES:  # 16-bit or float scans: Pillow's convert("L") clips at 255
        values = numpy.asarray(upright, dtype=numpy.float64)
        return Image.fromarray((values * (255 / max(float(values.max()), 1.0))).astype(numpy.uint8), mode="L")
    if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
        # Transparent areas are white paper, not black.
        rgba = upright.convert("RGBA")
        paper = Image.new("RGB", rgba.size, "white")
        paper.paste(rgba, mask=rgba.getchannel("A"))
        return paper
    return upright.convert("RGB")


def add_page(document: pymupdf.Document, image: Image.Image, dpi: int) -> None:
    width_pt, height_pt = image.width * 72 / dpi, image.height * 72 / dpi
    encoded = io.BytesIO()
    image.save(encoded, format="PNG", compress_level=1)  # lossless; speed over size, the file is temporary
    page = document.new_page(width=width_pt, height=height_pt)
    page.insert_image(page.rect, stream=encoded.getvalue())
