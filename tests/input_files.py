"""Files of every accepted input type, made by the tests (nothing committed): images with
rendered text that OCR can read, Office documents made with python-docx and openpyxl."""

import io
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # Debian's fonts-dejavu-core


def font(size: int) -> ImageFont.FreeTypeFont:
    if FONT.exists():
        return ImageFont.truetype(str(FONT), size)
    import pymupdf  # PyMuPDF bundles fonts: fall back to its Helvetica-like one

    return ImageFont.truetype(io.BytesIO(pymupdf.Font("helv").buffer), size)


def text_picture(text: str, *, size: tuple[int, int] = (900, 160), mode: str = "RGB") -> Image.Image:
    """Black text on white, large enough for OCR."""
    picture = Image.new("RGB", size, "white")
    ImageDraw.Draw(picture).text((30, 40), text, fill="black", font=font(56))
    return picture.convert(mode)


def image_bytes(text: str, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    picture = text_picture(text, mode="P" if image_format == "GIF" else "RGB")
    picture.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def multi_frame_bytes(texts: list[str], image_format: str) -> bytes:
    """A multi-page TIFF (or an animated GIF): one frame per text."""
    frames = [text_picture(text, mode="P" if image_format == "GIF" else "RGB") for text in texts]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=image_format, save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def sideways_jpeg(text: str) -> bytes:
    """A JPEG stored rotated a quarter turn, with EXIF orientation 6 ("rotate 90 CW to view"),
    as a phone camera held upright writes it."""
    stored = text_picture(text).transpose(Image.Transpose.ROTATE_90)  # counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation (EXIF 2.32, tag 274)
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif, quality=95)
    return buffer.getvalue()


def image_bomb() -> bytes:
    """A 20,000 x 20,000 PNG (400 megapixels) of a few tens of KB: zeros compress away."""
    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG")
    return buffer.getvalue()


def docx_bytes(*, heading: str, paragraph: str, cells: list[list[str]]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(heading, level=1)
    document.add_paragraph(paragraph)
    table = document.add_table(rows=len(cells), cols=len(cells[0]))
    table.style = "Table Grid"
    for row, values in zip(table.rows, cells, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def xlsx_bytes(rows: list[list]) -> bytes:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def pptx_bytes(folder: Path, *, title: str = "Quarterly review", point: str = "Revenue grew in every region") -> bytes:
    """A one-slide PPTX, written by LibreOffice Impress from a PDF (there is no PPTX library here)."""
    import pymupdf

    from workers.inputs.office import run_group

    document = pymupdf.open()
    page = document.new_page(width=720, height=540)
    page.insert_text((72, 120), title, fontsize=32)
    page.insert_text((72, 220), point, fontsize=20)
    source = folder / "slides.pdf"
    document.save(source)
    run_group(
        [
            "soffice",
            "--headless",
            f"-env:UserInstallation={(folder / 'profile').as_uri()}",
            "--infilter=impress_pdf_import",
            "--convert-to",
            "pptx",
            "--outdir",
            str(folder),
            str(source),
        ],
        timeout_seconds=120,
        cwd=folder,
        label="PPTX",
    )
    return (folder / "slides.pptx").read_bytes()


def corrupt_docx_bytes() -> bytes:
    """A ZIP with the parts of a DOCX whose XML is garbage: it looks like a DOCX and is not one."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"\x00\x01 this is not XML <<<")
        archive.writestr("word/document.xml", b"\xff\xfe garbage, not a document")
    return buffer.getvalue()


def reordered_zip(data: bytes) -> bytes:
    """The same archive with its members in reverse order ([Content_Types].xml last)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in reversed(source.infolist()):
            archive.writestr(info.filename, source.read(info.filename))
    return buffer.getvalue()
