"""The CPU engine for born-digital pages: PyMuPDF's text layer, classified into the
dots.ocr layout categories by font size and position. No Django here."""

import re
from collections import Counter
from dataclasses import dataclass

import pymupdf

from workers.ocr.base import Cell, PageOcr
from workers.pdf import PdfPage

# Share of the page height at the top/bottom where running headers and footers sit.
MARGIN_BAND = 0.07
BULLET = re.compile(r"^(?:[•◦▪‣∙·●○■□–—\-*]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s+")
CAPTION = re.compile(r"^(?:Figure|Fig\.|Table|Listing|Algorithm)\s*\d+[.:]?", re.IGNORECASE)
BOLD_FLAG = 16


@dataclass(frozen=True)
class TextBlock:
    bbox: tuple[float, float, float, float]
    text: str
    size: float
    bold: bool


class TextLayerEngine:
    name = "textlayer"

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        blocks, pictures = read_blocks(page.page)
        body_size = dominant_font_size(blocks)
        height = page.page.rect.height
        cells = [
            Cell(bbox=to_pixels(block.bbox, page.zoom), **classify(block, body_size, height))
            for block in blocks
        ]
        for bbox in pictures:
            insert_in_reading_order(cells, Cell(bbox=to_pixels(bbox, page.zoom), category="Picture"))
        return PageOcr(cells=headers_first_footers_last(cells), engine=self.name)


def read_blocks(page: pymupdf.Page) -> tuple[list[TextBlock], list[tuple]]:
    """Text blocks in content order, and the bboxes of images drawn on the page."""
    # Ligatures expanded ("ﬁ" -> "fi") so the Markdown is searchable text.
    flags = (pymupdf.TEXTFLAGS_TEXT | pymupdf.TEXT_PRESERVE_IMAGES) & ~pymupdf.TEXT_PRESERVE_LIGATURES
    layout = page.get_text("dict", flags=flags)
    blocks, pictures = [], []
    page_area = abs(page.rect)
    for block in layout["blocks"]:
        if block["type"] == 1:
            rect = pymupdf.Rect(block["bbox"]) & page.rect
            if not rect.is_empty and abs(rect) > page_area * 0.001:  # skip specks and rules
                pictures.append(tuple(rect))
            continue
        text_block = to_text_block(block)
        if text_block is not None:
            blocks.append(text_block)
    return blocks, pictures


def to_text_block(block: dict) -> TextBlock | None:
    lines, sizes, bold_chars, chars = [], [], 0, 0
    for line in block["lines"]:
        line_text = "".join(span["text"] for span in line["spans"]).strip()
        if line_text:
            lines.append(line_text)
        for span in line["spans"]:
            count = len(span["text"].strip())
            chars += count
            sizes.append(span["size"])
            bold_chars += count if span["flags"] & BOLD_FLAG else 0
    if not lines:
        return None
    return TextBlock(
        bbox=tuple(block["bbox"]),
        text=join_lines(lines),
        size=max(sizes),
        bold=chars > 0 and bold_chars / chars > 0.6,
    )


def join_lines(lines: list[str]) -> str:
    """Join the lines of a block, undoing end-of-line hyphenation."""
    text = lines[0]
    for line in lines[1:]:
        if text.endswith("-") and line[:1].islower():
            text = text[:-1] + line
        else:
            text = f"{text} {line}"
    return text


def dominant_font_size(blocks: list[TextBlock]) -> float:
    """The body text size: the size carrying the most characters on the page."""
    weights = Counter()
    for block in blocks:
        weights[round(block.size, 1)] += len(block.text)
    return weights.most_common(1)[0][0] if weights else 10.0


def classify(block: TextBlock, body_size: float, page_height: float) -> dict:
    """Category and Markdown text of a block, as dots.ocr would label it."""
    x1, y1, x2, y2 = block.bbox
    text = block.text
    short = len(text) < 150
    if short and y2 < page_height * MARGIN_BAND:
        return {"category": "Page-header", "text": text}
    if short and y1 > page_height * (1 - MARGIN_BAND):
        return {"category": "Page-footer", "text": text}
    if short and block.size >= body_size * 1.6:
        return {"category": "Title", "text": f"# {text}"}
    if short and (block.size >= body_size * 1.15 or (block.bold and len(text) < 100 and not text.endswith("."))):
        return {"category": "Section-header", "text": f"## {text}"}
    if CAPTION.match(text):
        return {"category": "Caption", "text": text}
    if BULLET.match(text):
        return {"category": "List-item", "text": BULLET.sub("- ", text, count=1)}
    if block.size <= body_size * 0.85 and y1 > page_height * 0.6:
        return {"category": "Footnote", "text": text}
    return {"category": "Text", "text": text}


def to_pixels(bbox: tuple, zoom: float) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = bbox
    return (round(x1 * zoom), round(y1 * zoom), round(x2 * zoom), round(y2 * zoom))


def insert_in_reading_order(cells: list[Cell], picture: Cell) -> None:
    """Put a picture before the first text block that starts below its top edge."""
    top = picture.bbox[1]
    for index, cell in enumerate(cells):
        if cell.bbox[1] > top:
            cells.insert(index, picture)
            return
    cells.append(picture)


def headers_first_footers_last(cells: list[Cell]) -> list[Cell]:
    band = {"Page-header": 0, "Page-footer": 2}
    return sorted(cells, key=lambda cell: band.get(cell.category, 1))  # stable: keeps order
