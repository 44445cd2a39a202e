"""The CPU engine for born-digital pages: PyMuPDF's text layer, classified into the
dots.ocr layout categories by font size and position, split into list items, with ruled
tables as HTML and multi-column pages in reading order. No Django here.

Everything is worked out in PDF points, in the frame of the displayed (rotated) page
(textlayer_frame), and converted to rendered pixels at the end. Seams: textlayer_lines
(writing direction of a line), textlayer_forms (form fields), textlayer_words
(hyphens), textlayer_tables, textlayer_order (reading order).
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import pymupdf

from workers.ocr.base import Cell, PageOcr
from workers.ocr.textlayer_forms import field_boxes, place_field_values
from workers.ocr.textlayer_frame import text_layout
from workers.ocr.textlayer_geometry import MARGIN_BAND, Box, center_inside_any, mostly_inside_any, to_pixels, union
from workers.ocr.textlayer_lines import has_rtl, is_tategaki, logical_text, separator, span_text
from workers.ocr.textlayer_order import Region, reading_order
from workers.ocr.textlayer_tables import find_ruled_tables
from workers.ocr.textlayer_words import DocumentWords
from workers.pdf import PYMUPDF_LOCK, PdfPage

# A list marker: a bullet glyph (including the private-use bullets of Symbol and
# Wingdings fonts), a dash or star followed by a space (not "-5"), or a number or letter
# followed by "." or ")" ("1.", "a)", "(iv)").
BULLET_GLYPH = re.compile(r"^(?:[•◦▪‣∙·●○■□\uf0b7\uf0a7\uf076\uf0d8]\s*|[–—\-*]\s+)(?=\S)")
NUMBERED = re.compile(r"^\(?(?:[1-9]\d{0,2}|[a-z]|[ivx]{2,5})[.)]\s+")
CAPTION = re.compile(r"^(?:Figure|Fig\.|Table|Listing|Algorithm)\s*\d+[.:]?", re.IGNORECASE)
BOLD_FLAG = 16
# Title and section-header sizes, relative to the page's body text size.
TITLE_SCALE = 1.6
HEADER_SCALE = 1.3
BOLD_HEADER_SCALE = 1.1


@dataclass(frozen=True)
class TextBlock:
    bbox: Box
    text: str
    size: float
    bold: bool
    rows: int
    vertical: bool = False


# A span of a row: its font size (points), its number of characters, whether it is bold.
Span = tuple[float, int, bool]


@dataclass(frozen=True)
class Row:
    """One visual line of text: MuPDF lines that share a baseline, joined."""

    bbox: Box
    text: str
    spans: tuple[Span, ...]  # (size, characters, bold) per span
    # (character, x0, x1) in stored order, on pages with right-to-left text
    glyphs: tuple[tuple[str, float, float], ...] = ()
    rtl: bool = False


class PageBlocks(NamedTuple):
    """What ``read_blocks`` finds on a page: text blocks and the boxes of drawn images."""

    blocks: list[TextBlock]
    pictures: list[Box]


class SpanStyle(NamedTuple):
    """The size (points) carrying most characters of some spans, and whether most are bold."""

    size: float
    bold: bool


class TextLayerEngine:
    name = "textlayer"

    def __init__(self) -> None:
        self.words: DocumentWords | None = None  # the evidence for hyphens, read once per document

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        with PYMUPDF_LOCK:
            layout = text_layout(page.page)
            place_field_values(layout, field_boxes(page.page))
            tables = find_ruled_tables(page.page, line_boxes(layout))
            covered = [box for table in tables for box in table.cell_boxes]
            blocks, pictures = read_blocks(page.page, layout, covered=covered, words=self.words_of(page.page))
            zoom, height = page.zoom, page.page.rect.height
        body_size = dominant_font_size(blocks)
        regions = [
            Region(block.bbox, rows=block.rows, vertical=block.vertical, **classify(block, body_size, height))
            for block in blocks
        ]
        regions += [Region(table.bbox, "Table", table.html) for table in tables]
        table_boxes = [table.bbox for table in tables]
        regions += [Region(bbox, "Picture") for bbox in pictures if not mostly_inside_any(bbox, table_boxes)]
        return PageOcr(
            cells=[
                Cell(bbox=to_pixels(region.bbox, zoom), category=region.category, text=region.text)
                for region in reading_order(regions)
            ],
            engine=self.name,
        )

    def words_of(self, page: pymupdf.Page) -> DocumentWords:
        if self.words is None or self.words.document is not page.parent:
            self.words = DocumentWords(page.parent)
        return self.words


# --- text blocks --------------------------------------------------------------------------


def line_boxes(layout: dict[str, Any]) -> list[Box]:
    return [
        tuple(line["bbox"])
        for block in layout["blocks"]
        if block["type"] == 0
        for line in block["lines"]
        if any(span["text"].strip() for span in line["spans"])
    ]


def read_blocks(
    page: pymupdf.Page, layout: dict[str, Any], covered: Sequence[Box] = (), words: DocumentWords | None = None
) -> PageBlocks:
    """Text blocks (lists split into items, tategaki as columns from the right), and the
    bboxes of images drawn on the page. Lines whose centre falls in a ``covered`` box (a
    table cell) are left out; ``words`` decides hyphens at line ends."""
    words = words or DocumentWords(page.parent)
    blocks, pictures = [], []
    page_area = abs(page.rect)
    for block in layout["blocks"]:
        if block["type"] == 1:
            rect = pymupdf.Rect(block["bbox"]) & page.rect
            if not rect.is_empty and abs(rect) > page_area * 0.001:  # skip specks and rules
                pictures.append(tuple(rect))
            continue
        lines = [line for line in block["lines"] if line_text(line) and not center_inside_any(line["bbox"], covered)]
        if lines and is_tategaki(lines):
            blocks.append(text_block(vertical_columns(lines), words, vertical=True))
        else:
            blocks += [
                text_block(rows, words)
                for item in split_list_items(visual_rows(lines))
                for rows in split_at_style_changes(item)
            ]
    return PageBlocks(blocks=blocks, pictures=pictures)


def line_text(line: dict[str, Any]) -> str:
    """A line's text as text_layout left it (or worked out, for a line made elsewhere)."""
    if "text" not in line:
        line["text"] = "".join(span_text(span) for span in line["spans"]).strip()
    return str(line["text"])


def visual_rows(lines: list[dict[str, Any]]) -> list[Row]:
    """Join MuPDF lines that sit on one baseline (a bullet glyph set apart from its text
    is a line of its own), dropping empty ones; right-to-left rows in logical order."""
    rows: list[Row] = []
    for line in lines:
        text = line_text(line)
        if not text:
            continue
        spans = tuple(
            (span["size"], len(span_text(span).strip()), bool(span["flags"] & BOLD_FLAG)) for span in line["spans"]
        )
        bbox, glyphs, rtl = tuple(line["bbox"]), tuple(line.get("glyphs", ())), has_rtl(text)
        if rows and same_baseline(rows[-1].bbox, bbox, either_way=rtl or rows[-1].rtl):
            previous = rows[-1]
            rows[-1] = Row(
                union(previous.bbox, bbox),
                f"{previous.text} {text}",
                previous.spans + spans,
                previous.glyphs + glyphs,
                previous.rtl or rtl,
            )
        else:
            rows.append(Row(bbox, text, spans, glyphs, rtl))
    return [in_logical_order(row) for row in rows]


def in_logical_order(row: Row) -> Row:
    if not row.rtl or not row.glyphs:
        return row
    return replace(row, text=logical_text(list(row.glyphs), row.text, row.bbox[3] - row.bbox[1]))


def same_baseline(left: Box, right: Box, either_way: bool = False) -> bool:
    """Whether two lines share a baseline, the second to the right of the first (or on
    either side, for right-to-left text, whose lines MuPDF may cut and store leftwards)."""
    overlap = min(left[3], right[3]) - max(left[1], right[1])
    smaller = min(left[3] - left[1], right[3] - right[1])
    return smaller > 0 and overlap >= smaller * 0.5 and (either_way or right[0] >= left[2] - 1)


def vertical_columns(lines: list[dict[str, Any]]) -> list[Row]:
    """Tategaki: MuPDF's vertical lines (often one per character) grouped into columns,
    the columns from the right, each read top to bottom."""
    columns: list[list[dict[str, Any]]] = []
    for line in sorted(lines, key=lambda line: -(line["bbox"][0] + line["bbox"][2])):
        if columns and overlaps_horizontally(columns[-1][-1]["bbox"], line["bbox"]):
            columns[-1].append(line)
        else:
            columns.append([line])
    return [column_row(sorted(column, key=lambda line: line["bbox"][1])) for column in columns]


def overlaps_horizontally(first: Box, second: Box) -> bool:
    overlap = min(first[2], second[2]) - max(first[0], second[0])
    return overlap >= min(first[2] - first[0], second[2] - second[0]) * 0.5


def column_row(column: list[dict[str, Any]]) -> Row:
    """One tategaki column as a row. MuPDF often makes each glyph a line: pieces that touch
    ("2", "0", "2", "4" of an upright year) join without a space, like CJK characters."""
    text, bbox = "", tuple(column[0]["bbox"])
    spans: tuple[Span, ...] = ()
    for line in column:
        piece, box = line_text(line), tuple(line["bbox"])
        touching = box[1] - bbox[3] < (box[2] - box[0]) * 0.25
        text = text + ("" if touching else separator(text, piece)) + piece if text else piece
        bbox = union(bbox, box)
        spans += tuple(
            (span["size"], len(span_text(span).strip()), bool(span["flags"] & BOLD_FLAG)) for span in line["spans"]
        )
    return Row(bbox, text, spans)


def split_list_items(rows: list[Row]) -> list[list[Row]]:
    """A block's rows, split before each list marker when the block is a list.

    MuPDF puts a tightly set list (and often the sentence introducing it) in one block;
    dots.ocr gives each item a cell. A marker counts when the block starts with one or
    has several: a single wrapped line that happens to start with a dash or "12." in
    the middle of a paragraph does not split it.
    """
    markers = [index for index, row in enumerate(rows) if is_list_marker(row.text)]
    if not markers or (markers[0] != 0 and len(markers) < 2):
        return [rows] if rows else []
    starts = sorted({0, *markers})
    return [rows[start:end] for start, end in zip(starts, starts[1:] + [len(rows)], strict=True)]


def split_at_style_changes(rows: list[Row]) -> list[list[Row]]:
    """A block's rows, split where the text size changes by a heading's step or where a
    bold heading of one or two rows ends: MuPDF often joins a heading set close above
    its paragraph (LibreOffice's export of a Word "Heading 1", say) into one block, and
    the block would then read as one paragraph with the heading in its first line."""
    if len(rows) < 2:
        return [rows] if rows else []
    styles = [span_style(row.spans) for row in rows]
    cuts = [index for index in range(1, len(rows)) if size_step(styles[index - 1].size, styles[index].size)]
    bold_rows = next((index for index, style in enumerate(styles) if not style.bold), len(rows))
    if 0 < bold_rows <= 2 and bold_rows < len(rows) and not rows[bold_rows - 1].text.endswith("."):
        cuts.append(bold_rows)
    starts = sorted({0, *cuts})
    return [rows[start:end] for start, end in zip(starts, starts[1:] + [len(rows)], strict=True)]


def span_style(spans: Iterable[Span]) -> SpanStyle:
    """Of ``spans`` ((size, characters, bold) each): the size carrying most characters
    (one big symbol does not make a heading) and whether most characters are bold."""
    sizes: Counter[float] = Counter()
    bold_chars, chars = 0, 0
    for size, count, bold in spans:
        sizes[round(size, 1)] += count
        chars += count
        bold_chars += count if bold else 0
    return SpanStyle(size=sizes.most_common(1)[0][0] if sizes else 0.0, bold=chars > 0 and bold_chars / chars > 0.6)


def size_step(first: float, second: float) -> bool:
    return min(first, second) > 0 and max(first, second) / min(first, second) >= BOLD_HEADER_SCALE


def is_list_marker(text: str) -> bool:
    return bool(BULLET_GLYPH.match(text) or NUMBERED.match(text))


def text_block(rows: list[Row], words: DocumentWords, vertical: bool = False) -> TextBlock:
    size, bold = span_style([span for row in rows for span in row.spans])
    bbox = rows[0].bbox
    for row in rows[1:]:
        bbox = union(bbox, row.bbox)
    return TextBlock(
        bbox=bbox,
        text=join_lines([row.text for row in rows], words),
        size=size,
        bold=bold,
        rows=len(rows),
        vertical=vertical,
    )


def join_lines(lines: list[str], words: DocumentWords) -> str:
    """Join the lines of a block: CJK without spaces, hyphens at line ends by the document's words."""
    text = lines[0]
    for line in lines[1:]:
        text = text + line if separator(text, line) == "" else words.join(text, line)
    return text


def dominant_font_size(blocks: list[TextBlock]) -> float:
    """The body text size: the size carrying the most characters on the page."""
    weights: Counter[float] = Counter()
    for block in blocks:
        weights[round(block.size, 1)] += len(block.text)
    return weights.most_common(1)[0][0] if weights else 10.0


def classify(block: TextBlock, body_size: float, page_height: float) -> dict[str, str]:
    """Category and Markdown text of a block, as dots.ocr would label it."""
    x1, y1, x2, y2 = block.bbox
    text = block.text
    short = len(text) < 150
    if short and y2 < page_height * MARGIN_BAND:
        return {"category": "Page-header", "text": text}
    if short and y1 > page_height * (1 - MARGIN_BAND):
        return {"category": "Page-footer", "text": text}
    if short and block.size >= body_size * TITLE_SCALE:
        return {"category": "Title", "text": f"# {text}"}
    if short and is_section_header(block, body_size):
        return {"category": "Section-header", "text": f"## {text}"}
    if CAPTION.match(text):
        return {"category": "Caption", "text": text}
    if is_list_marker(text):
        return {"category": "List-item", "text": list_item_markdown(text)}
    if block.size <= body_size * 0.85 and y1 > page_height * 0.6:
        return {"category": "Footnote", "text": text}
    return {"category": "Text", "text": text}


def is_section_header(block: TextBlock, body_size: float) -> bool:
    if block.size >= body_size * HEADER_SCALE:
        return True
    if block.bold and block.size >= body_size * BOLD_HEADER_SCALE:
        return True
    # Run-in bold headings at body size: short, one or two lines, no full stop.
    return block.bold and block.rows <= 2 and len(block.text) < 100 and not block.text.endswith(".")


def list_item_markdown(text: str) -> str:
    """A bullet glyph becomes Markdown's "- "; a number or letter marker stays as it is."""
    if NUMBERED.match(text):
        return text
    return BULLET_GLYPH.sub("- ", text, count=1)
