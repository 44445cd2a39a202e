"""The text layer of a page in the frame of its rendered image. No Django here.

MuPDF reports text and drawings in the coordinates of the unrotated page, while the
page image (and so every cell's bbox) is rendered with the page's /Rotate applied.
Everything the text-layer engine reads is moved into the displayed frame once, here,
with ``page.rotation_matrix``, so reading order, columns, margins and cell boxes all
work on the page as a reader sees it.
"""

import pymupdf

from workers.ocr.textlayer_lines import CONTROL_CHARACTERS, has_rtl


def text_layout(page: pymupdf.Page) -> dict:
    """MuPDF's blocks, lines and spans of the page (images included), in the displayed
    frame. On a page with right-to-left text each line also carries ``glyphs``:
    (character, x0, x1) per character, in the order the PDF stores them."""
    # Ligatures expanded ("ﬁ" -> "fi") so the Markdown is searchable text.
    flags = (pymupdf.TEXTFLAGS_TEXT | pymupdf.TEXT_PRESERVE_IMAGES) & ~pymupdf.TEXT_PRESERVE_LIGATURES
    textpage = page.get_textpage(flags=flags)
    layout = page.get_text("dict", textpage=textpage)
    matrix = page.rotation_matrix
    if has_rtl("".join(span["text"] for block in layout["blocks"] for line in block.get("lines", ())
                       for span in line["spans"])):
        attach_glyphs(layout, page.get_text("rawdict", textpage=textpage), matrix)
    if page.rotation:
        to_display_frame(layout, matrix)
    return layout


def attach_glyphs(layout: dict, raw: dict, matrix: pymupdf.Matrix) -> None:
    """Each line's characters with their horizontal extent, already in the displayed frame."""
    for block, raw_block in zip(layout["blocks"], raw["blocks"]):
        for line, raw_line in zip(block.get("lines", ()), raw_block.get("lines", ())):
            line["glyphs"] = [glyph(char, matrix) for span in raw_line["spans"] for char in span["chars"]]


def glyph(char: dict, matrix: pymupdf.Matrix) -> tuple[str, float, float]:
    rect = pymupdf.Rect(char["bbox"]) * matrix
    return CONTROL_CHARACTERS.sub(" ", char["c"]), rect.x0, rect.x1


def to_display_frame(layout: dict, matrix: pymupdf.Matrix) -> None:
    """Move every box, origin and writing direction of a text layout into the displayed frame, in place."""
    for block in layout["blocks"]:
        block["bbox"] = transform_box(block["bbox"], matrix)
        for line in block.get("lines", ()):
            line["bbox"] = transform_box(line["bbox"], matrix)
            line["dir"] = transform_direction(line["dir"], matrix)
            for span in line["spans"]:
                span["bbox"] = transform_box(span["bbox"], matrix)
                span["origin"] = tuple(pymupdf.Point(span["origin"]) * matrix)


def transform_box(bbox, matrix: pymupdf.Matrix) -> tuple[float, float, float, float]:
    return tuple(pymupdf.Rect(bbox) * matrix)


def transform_direction(direction, matrix: pymupdf.Matrix) -> tuple[float, float]:
    dx, dy = direction
    return (dx * matrix.a + dy * matrix.c, dx * matrix.b + dy * matrix.d)


def display_drawings(page: pymupdf.Page) -> list[dict]:
    """``page.get_drawings()`` with lines and rectangles in the displayed frame (other
    items, which the engine does not read, are left as they are)."""
    drawings = page.get_drawings()
    if not page.rotation:
        return drawings
    matrix = page.rotation_matrix
    for path in drawings:
        path["rect"] = pymupdf.Rect(path["rect"]) * matrix
        path["items"] = [transform_item(item, matrix) for item in path["items"]]
    return drawings


def transform_item(item: tuple, matrix: pymupdf.Matrix) -> tuple:
    if item[0] == "l":
        return ("l", item[1] * matrix, item[2] * matrix)
    if item[0] == "re":
        return ("re", item[1] * matrix, *item[2:])
    if item[0] == "qu":
        return ("qu", item[1] * matrix)
    return item
