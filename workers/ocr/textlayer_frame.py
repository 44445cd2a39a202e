"""The text layer of a page in the frame of its rendered image. No Django here.

PyMuPDF reports text and drawings in the coordinates of the unrotated page, while the
page image (and so every cell's bbox) is rendered with the page's /Rotate applied.
Everything the text-layer engine reads is taken in the displayed frame, here, with
``page.rotation_matrix``, so reading order, columns, margins and cell boxes all work
on the page as a reader sees it.
"""

from typing import Any

import pymupdf

from workers.ocr.textlayer_lines import CONTROL_CHARACTERS, has_rtl, span_text


def text_layout(page: pymupdf.Page) -> dict[str, Any]:
    """MuPDF's blocks, lines and spans of the page (images included), in the displayed
    frame. Each line also carries its ``text`` (control characters as spaces, stripped)
    and, on a page with right-to-left text, its ``glyphs``: (character, x0, x1) per
    character, in the order the PDF stores them."""
    # Ligatures expanded ("ﬁ" -> "fi") so the Markdown is searchable text.
    flags = (pymupdf.TEXTFLAGS_TEXT | pymupdf.TEXT_PRESERVE_IMAGES) & ~pymupdf.TEXT_PRESERVE_LIGATURES
    if page.rotation:
        # MuPDF builds lines and blocks in the frame it is given: turned first, a turned
        # paragraph is one block, as it would be upright (afterwards, it may be cut in two).
        # The clip is the displayed page, where the turned characters now lie.
        textpage = page.get_textpage(flags=flags, matrix=page.rotation_matrix, clip=page.rect)
    else:
        textpage = page.get_textpage(flags=flags)
    layout: dict[str, Any] = page.get_text("dict", textpage=textpage)
    lines = [line for block in layout["blocks"] for line in block.get("lines", ())]
    for line in lines:
        line["text"] = "".join(span_text(span) for span in line["spans"]).strip()
    if has_rtl("".join(line["text"] for line in lines)):
        attach_glyphs(layout, page.get_text("rawdict", textpage=textpage))
    return layout


def attach_glyphs(layout: dict[str, Any], raw: dict[str, Any]) -> None:
    """Each line's characters with their horizontal extent."""
    for block, raw_block in zip(layout["blocks"], raw["blocks"], strict=False):
        for line, raw_line in zip(block.get("lines", ()), raw_block.get("lines", ()), strict=False):
            line["glyphs"] = [
                (CONTROL_CHARACTERS.sub(" ", char["c"]), char["bbox"][0], char["bbox"][2])
                for span in raw_line["spans"]
                for char in span["chars"]
            ]


def display_drawings(page: pymupdf.Page) -> list[dict[str, Any]]:
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


def transform_item(item: tuple[Any, ...], matrix: pymupdf.Matrix) -> tuple[Any, ...]:
    if item[0] == "l":
        return ("l", item[1] * matrix, item[2] * matrix)
    if item[0] == "re":
        return ("re", item[1] * matrix, *item[2:])
    if item[0] == "qu":
        return ("qu", item[1] * matrix)
    return item
