"""Layout cells to Markdown, following dots.ocr's layoutjson2md
(dots_ocr/utils/format_transformer.py), except that a Picture links an image file
instead of inlining it as base64."""

import re
from collections.abc import Callable

from workers.ocr.base import HEADER_FOOTER, Cell

PictureLink = Callable[[int, Cell], str]


def cells_to_markdown(cells: list[Cell], *, picture_link: PictureLink, drop_headers_footers: bool = False) -> str:
    """Markdown of one page; ``picture_link(index, cell)`` names the file of a Picture."""
    items = []
    for index, cell in enumerate(cells):
        if drop_headers_footers and cell.category in HEADER_FOOTER:
            continue
        if cell.category == "Picture":
            items.append(f"![]({picture_link(index, cell)})")
        elif cell.category == "Formula":
            items.append(formula_block(cell.text))
        elif cell.category in ("List-item", "Table"):
            items.append(cell.text.strip())
        else:
            items.append(collapse_whitespace(cell.text))
    return "\n\n".join(item for item in items if item)


def formula_block(text: str) -> str:
    """A display formula as a ``$$`` block (dots.ocr's get_formula_in_markdown, simplified)."""
    text = text.strip()
    if text.startswith("$$") and text.endswith("$$") and len(text) >= 4:
        text = text[2:-2].strip()
    elif text.startswith("\\[") and text.endswith("\\]"):
        text = text[2:-2].strip()
    return f"$$\n{text}\n$$" if text else ""


def collapse_whitespace(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def with_headers_footers(cells: list[Cell], body: str) -> str:
    """A page's Markdown with headers and footers around ``body``, its Markdown without
    them (a user's edit, which replaces the model's body but not its running heads): the
    header and footer cells before the first body cell go above, the others below."""
    first_body = next((index for index, cell in enumerate(cells) if cell.category not in HEADER_FOOTER), len(cells))
    above = [cell for cell in cells[:first_body] if cell.category in HEADER_FOOTER]
    below = [cell for cell in cells[first_body:] if cell.category in HEADER_FOOTER]

    def no_pictures(index: int, cell: Cell) -> str:  # headers and footers are text cells
        return ""

    parts = (
        cells_to_markdown(above, picture_link=no_pictures),
        body,
        cells_to_markdown(below, picture_link=no_pictures),
    )
    return "\n\n".join(part for part in parts if part)
