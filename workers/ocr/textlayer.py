"""The CPU engine for born-digital pages: PyMuPDF's text layer, classified into the
dots.ocr layout categories by font size and position, split into list items, with ruled
tables as HTML and multi-column pages in reading order. No Django here.

Everything is worked out in PDF points and converted to rendered pixels at the end.
"""

import html
import logging
import re
from collections import Counter
from dataclasses import dataclass

import pymupdf

from workers.ocr.base import HEADER_FOOTER, Cell, PageOcr
from workers.pdf import PYMUPDF_LOCK, PdfPage

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]

# Share of the page height at the top/bottom where running headers and footers sit.
MARGIN_BAND = 0.07
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
# Column detection. Blocks at most COLUMN_MAX_SHARE of the text width may sit in a
# column. A gutter is a vertical strip where those blocks pile up to at most
# GUTTER_MAX_COVERAGE of the tallest pile: a centred author line or page number may
# sit in it. The paragraphs (blocks of two lines or more) on each side must fill
# COLUMN_MIN_HEIGHT_SHARE of the text's height: labels of a figure or pieces of a
# formula side by side are not columns.
COLUMN_MAX_SHARE = 0.55
GUTTER_MAX_COVERAGE = 0.15
MIN_GUTTER_PT = 4.0
COLUMN_MIN_HEIGHT_SHARE = 0.15
HEADINGS = ("Title", "Section-header")
# page.find_tables runs PyMuPDF's layout model (pymupdf_layout, ONNX) on the whole page:
# 1-1.5 s a page on our CPUs, against ~20 ms for the rest of this engine, and on pages
# without rules it finds false tables (tables of contents). So it only runs on pages
# with table-like rules: at least MIN_ALIGNED_RULES horizontal rules with the same ends,
# one under the other (a booktabs table has three), outside the header/footer bands, at
# least a tenth of the page wide, with text between most pairs of them (a coordinate
# grid in a figure has rules but no text rows).
MIN_ALIGNED_RULES = 3
RULE_MIN_PAGE_SHARE = 0.1
RULE_ALIGN_TOLERANCE_PT = 2.0
TEXT_ROWS_SHARE = 0.75
# Fonts with a broken ToUnicode map yield control characters (TeX's big brackets come
# out as \x12, \x13; some files have NULs, which PostgreSQL text refuses). Each is a
# glyph on the page, so it becomes a space rather than gluing its neighbours together.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})


@dataclass(frozen=True)
class TextBlock:
    bbox: Box
    text: str
    size: float
    bold: bool
    rows: int


@dataclass(frozen=True)
class Region:
    """A cell before ordering, in PDF points."""

    bbox: Box
    category: str
    text: str = ""
    rows: int = 1


@dataclass(frozen=True)
class Row:
    """One visual line of text: MuPDF lines that share a baseline, joined."""

    bbox: Box
    text: str
    spans: tuple  # (size, characters, bold) per span


class TextLayerEngine:
    name = "textlayer"

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        with PYMUPDF_LOCK:
            layout = text_layout(page.page)
            tables = find_ruled_tables(page.page, line_boxes(layout))
            covered = [box for table in tables for box in table.cell_boxes]
            blocks, pictures = read_blocks(page.page, layout, covered=covered)
            zoom, height = page.zoom, page.page.rect.height
        body_size = dominant_font_size(blocks)
        regions = [Region(block.bbox, rows=block.rows, **classify(block, body_size, height)) for block in blocks]
        regions += [Region(table.bbox, "Table", table.html) for table in tables]
        regions += [Region(bbox, "Picture") for bbox in pictures if not mostly_inside_any(bbox, tables)]
        return PageOcr(
            cells=[Cell(bbox=to_pixels(region.bbox, zoom), category=region.category, text=region.text)
                   for region in reading_order(regions)],
            engine=self.name,
        )


# --- text blocks --------------------------------------------------------------------------


def text_layout(page: pymupdf.Page) -> dict:
    """MuPDF's blocks, lines and spans of the page, images included."""
    # Ligatures expanded ("ﬁ" -> "fi") so the Markdown is searchable text.
    flags = (pymupdf.TEXTFLAGS_TEXT | pymupdf.TEXT_PRESERVE_IMAGES) & ~pymupdf.TEXT_PRESERVE_LIGATURES
    return page.get_text("dict", flags=flags)


def line_boxes(layout: dict) -> list[Box]:
    return [tuple(line["bbox"]) for block in layout["blocks"] if block["type"] == 0 for line in block["lines"]
            if any(span["text"].strip() for span in line["spans"])]


def read_blocks(page: pymupdf.Page, layout: dict, covered: list[Box] = ()) -> tuple[list[TextBlock], list[Box]]:
    """Text blocks (lists split into items), and the bboxes of images drawn on the page.
    Lines whose centre falls in a ``covered`` box (a table cell) are left out."""
    blocks, pictures = [], []
    page_area = abs(page.rect)
    for block in layout["blocks"]:
        if block["type"] == 1:
            rect = pymupdf.Rect(block["bbox"]) & page.rect
            if not rect.is_empty and abs(rect) > page_area * 0.001:  # skip specks and rules
                pictures.append(tuple(rect))
            continue
        lines = [line for line in block["lines"] if not center_inside_any(line["bbox"], covered)]
        blocks += [text_block(rows) for rows in split_list_items(visual_rows(lines))]
    return blocks, pictures


def visual_rows(lines: list[dict]) -> list[Row]:
    """Join MuPDF lines that sit on one baseline (a bullet glyph set apart from its text
    is a line of its own), dropping empty ones."""
    rows: list[Row] = []
    for line in lines:
        text = "".join(span_text(span) for span in line["spans"]).strip()
        if not text:
            continue
        spans = tuple((span["size"], len(span_text(span).strip()), bool(span["flags"] & BOLD_FLAG))
                      for span in line["spans"])
        bbox = tuple(line["bbox"])
        if rows and same_baseline(rows[-1].bbox, bbox):
            previous = rows[-1]
            rows[-1] = Row(union(previous.bbox, bbox), f"{previous.text} {text}", previous.spans + spans)
        else:
            rows.append(Row(bbox, text, spans))
    return rows


def span_text(span: dict) -> str:
    return CONTROL_CHARACTERS.sub(" ", span["text"])


def same_baseline(left: Box, right: Box) -> bool:
    overlap = min(left[3], right[3]) - max(left[1], right[1])
    smaller = min(left[3] - left[1], right[3] - right[1])
    return smaller > 0 and overlap >= smaller * 0.5 and right[0] >= left[2] - 1


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
    return [rows[start:end] for start, end in zip(starts, starts[1:] + [len(rows)])]


def is_list_marker(text: str) -> bool:
    return bool(BULLET_GLYPH.match(text) or NUMBERED.match(text))


def text_block(rows: list[Row]) -> TextBlock:
    sizes, bold_chars, chars = Counter(), 0, 0
    for size, count, bold in (span for row in rows for span in row.spans):
        sizes[round(size, 1)] += count
        chars += count
        bold_chars += count if bold else 0
    bbox = rows[0].bbox
    for row in rows[1:]:
        bbox = union(bbox, row.bbox)
    return TextBlock(
        bbox=bbox,
        text=join_lines([row.text for row in rows]),
        # The size carrying most characters: one big symbol does not make a heading.
        size=sizes.most_common(1)[0][0],
        bold=chars > 0 and bold_chars / chars > 0.6,
        rows=len(rows),
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


# --- tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoundTable:
    bbox: Box
    html: str
    cell_boxes: list[Box]


def find_ruled_tables(page: pymupdf.Page, text_lines: list[Box]) -> list[FoundTable]:
    """Tables drawn with rules, as PyMuPDF finds them, kept when they look like tables."""
    if not has_table_rules(page, text_lines):
        return []
    try:
        # The layout model says where tables are; the rules, where they frame one, say how
        # it is divided: the model's grid can stop at the text's edge and split a merged
        # cell. The rules alone find grids in figures and miss tables ruled only across.
        located = page.find_tables().tables
        ruled = page.find_tables(use_layout=False).tables if located else []
    except Exception:  # table finding is an extra: a page it chokes on is still read as text
        logger.warning("page=%s find_tables failed; reading it as text", page.number, exc_info=True)
        return []
    found = []
    for table in unique(ruled_match(table, ruled) or table for table in located):
        boxes = [row.cells for row in table.rows]
        # Our own reading of the cells: Table.extract re-sorts characters and tears "8.9"
        # into "89 ."; pymupdf.table.extract_cells drops zero-width characters (the
        # second half of a flag emoji) and re-reads the page for every cell.
        characters = text_characters(table.textpage)
        grid = [[None if box is None else cell_text(characters, box) for box in row] for row in boxes]
        if looks_like_a_table(grid):
            found.append(FoundTable(tuple(table.bbox), table_html(grid, boxes),
                                    [tuple(box) for row in boxes for box in row if box is not None]))
    return found


def ruled_match(located, ruled: list):
    """The ruled table covering most of a located table, if one covers nearly all of it."""
    overlap, best = max(((area(intersection(tuple(located.bbox), tuple(table.bbox))), table) for table in ruled),
                        key=lambda pair: pair[0], default=(0.0, None))
    return best if overlap >= area(tuple(located.bbox)) * 0.8 > 0 else None


def unique(tables) -> list:
    kept = []
    for table in tables:
        if all(table is not other for other in kept):
            kept.append(table)
    return kept


def has_table_rules(page: pymupdf.Page, text_lines: list[Box]) -> bool:
    """Whether the page has rules laid out like a table's, with text rows between them."""
    centers = [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in text_lines]
    for left, right, heights in aligned_rules(horizontal_rules(page)):
        gaps = list(zip(heights, heights[1:]))
        with_text = sum(1 for top, bottom in gaps
                        if any(left <= x <= right and top < y < bottom for x, y in centers))
        if len(gaps) >= MIN_ALIGNED_RULES - 1 and with_text >= max(2, len(gaps) * TEXT_ROWS_SHARE):
            return True
    return False


def aligned_rules(rules: list[tuple[float, float, float]]) -> list[tuple[float, float, list[float]]]:
    """Rules grouped by their ends: (left, right, distinct heights top to bottom)."""
    groups: list[tuple[float, float, list[float]]] = []
    for x0, x1, y in rules:
        for left, right, heights in groups:
            if abs(left - x0) <= RULE_ALIGN_TOLERANCE_PT and abs(right - x1) <= RULE_ALIGN_TOLERANCE_PT:
                heights.append(y)
                break
        else:
            groups.append((x0, x1, [y]))
    return [(left, right, distinct(heights)) for left, right, heights in groups]


def distinct(heights: list[float]) -> list[float]:
    """Sorted, with a double rule (two lines within 2 pt) counted once."""
    kept: list[float] = []
    for height in sorted(heights):
        if not kept or height - kept[-1] > 2:
            kept.append(height)
    return kept


def horizontal_rules(page: pymupdf.Page) -> list[tuple[float, float, float]]:
    """(x0, x1, y) of horizontal lines and rectangle edges in the page body."""
    rules = []
    for path in page.get_drawings():
        for item in path["items"]:
            if item[0] == "l" and abs(item[1].y - item[2].y) < 1:
                rules.append((min(item[1].x, item[2].x), max(item[1].x, item[2].x), item[1].y))
            elif item[0] == "re":
                rect = item[1]
                if rect.height < 2:  # a rule drawn as a thin filled rectangle
                    rules.append((rect.x0, rect.x1, (rect.y0 + rect.y1) / 2))
                else:
                    rules += [(rect.x0, rect.x1, rect.y0), (rect.x0, rect.x1, rect.y1)]
    top, bottom = page.rect.height * MARGIN_BAND, page.rect.height * (1 - MARGIN_BAND)
    shortest = page.rect.width * RULE_MIN_PAGE_SHARE
    return [(x0, x1, y) for x0, x1, y in rules if top < y < bottom and x1 - x0 >= shortest]


def text_characters(textpage: pymupdf.TextPage) -> list[list[tuple[str, float, float]]]:
    """The characters of a page line by line, each with the centre of its box."""
    return [
        [(char["c"], (char["bbox"][0] + char["bbox"][2]) / 2, (char["bbox"][1] + char["bbox"][3]) / 2)
         for span in line["spans"] for char in span["chars"]]
        for block in textpage.extractRAWDICT()["blocks"] if block["type"] == 0
        for line in block["lines"]
    ]


def cell_text(lines: list[list[tuple[str, float, float]]], box) -> str:
    """The characters centred in a table cell, line after line, whitespace collapsed."""
    x0, y0, x1, y1 = box
    parts = ("".join(char for char, x, y in line if x0 <= x <= x1 and y0 <= y <= y1) for line in lines)
    text = " ".join(part for part in parts if part.strip())
    return " ".join(CONTROL_CHARACTERS.sub(" ", text).translate(LIGATURES).split())


def looks_like_a_table(grid: list[list[str | None]]) -> bool:
    """At least 2x2, mostly filled, with words or numbers in it (not a grid drawn in a
    figure, or form fields in boxes)."""
    if len(grid) < 2 or max(len(row) for row in grid) < 2:
        return False
    cells = [text for row in grid for text in row if text is not None]
    filled = [text for text in cells if text]
    readable = [text for text in filled if any(character.isalnum() for character in text)]
    return len(filled) >= len(cells) * 0.5 and len(readable) >= len(filled) * 0.5


def table_html(grid: list[list[str | None]], boxes: list[list]) -> str:
    """The table as dots.ocr writes tables: HTML, first row as header cells, merged cells
    as colspan/rowspan (worked out from the cell rectangles)."""
    column_edges = edges([(box[0], box[2]) for row in boxes for box in row if box is not None])
    row_edges = edges([(box[1], box[3]) for row in boxes for box in row if box is not None])
    rows_html = []
    for row_index, (texts, row_boxes) in enumerate(zip(grid, boxes)):
        tag = "th" if row_index == 0 else "td"
        cells_html = []
        for text, box in zip(texts, row_boxes):
            if box is None:
                continue  # covered by a merged cell to its left or above
            spans = span_attributes(spans_between(column_edges, box[0], box[2]),
                                    spans_between(row_edges, box[1], box[3]))
            cells_html.append(f"<{tag}{spans}>{html.escape(text or '', quote=False)}</{tag}>")
        rows_html.append(f"<tr>{''.join(cells_html)}</tr>")
    return f"<table>{''.join(rows_html)}</table>"


def edges(intervals: list[tuple[float, float]]) -> list[float]:
    """Distinct cell borders along one axis (borders within 1 pt are one)."""
    merged: list[float] = []
    for value in sorted(value for interval in intervals for value in interval):
        if not merged or value - merged[-1] > 1:
            merged.append(value)
    return merged


def spans_between(borders: list[float], start: float, end: float) -> int:
    return 1 + sum(1 for border in borders if start + 1 < border < end - 1)


def span_attributes(colspan: int, rowspan: int) -> str:
    return (f' colspan="{colspan}"' if colspan > 1 else "") + (f' rowspan="{rowspan}"' if rowspan > 1 else "")


# --- reading order ------------------------------------------------------------------------


def reading_order(regions: list[Region]) -> list[Region]:
    """Page header, then the body column by column, then page footer.

    Full-width regions (a title, a wide figure) cut the page into bands; within a band,
    each column is read top to bottom before the next, left to right.
    """
    headers = [region for region in regions if region.category == "Page-header"]
    footers = [region for region in regions if region.category == "Page-footer"]
    body = [region for region in regions if region.category not in HEADER_FOOTER]
    return by_position(headers) + body_order(body) + by_position(footers)


def by_position(regions: list[Region]) -> list[Region]:
    return sorted(regions, key=lambda region: (region.bbox[1], region.bbox[0]))


def body_order(regions: list[Region]) -> list[Region]:
    gutters = column_gutters(regions)
    spanning = by_position([region for region in regions if crosses_any(region.bbox, gutters)])
    in_columns = [region for region in regions if not crosses_any(region.bbox, gutters)]
    bands: list[list[Region]] = [[] for _ in range(len(spanning) + 1)]
    for region in in_columns:
        bands[sum(1 for cut in spanning if middle_y(cut.bbox) < middle_y(region.bbox))].append(region)
    ordered = []
    for index, band in enumerate(bands):
        ordered += sorted(band, key=lambda region: (column_of(region.bbox, gutters), region.bbox[1], region.bbox[0]))
        if index < len(spanning):
            ordered.append(spanning[index])
    return ordered


def column_gutters(regions: list[Region]) -> list[tuple[float, float]]:
    """The vertical strips between text columns, left to right."""
    # Headings are left out: a title is often narrow and centred over the gutter.
    texts = [region for region in regions if region.category not in ("Picture", "Table", *HEADINGS)]
    if not texts:
        return []
    width = max(text.bbox[2] for text in texts) - min(text.bbox[0] for text in texts)
    height = max(text.bbox[3] for text in texts) - min(text.bbox[1] for text in texts)
    columnar = [text for text in texts if text.bbox[2] - text.bbox[0] <= width * COLUMN_MAX_SHARE]
    paragraphs = [text.bbox for text in columnar if text.rows >= 2]
    min_column_height = height * COLUMN_MIN_HEIGHT_SHARE
    return [(start, end) for start, end in low_coverage_strips([text.bbox for text in columnar])
            if end - start >= MIN_GUTTER_PT
            and sum(box[3] - box[1] for box in paragraphs if box[2] <= start + 1) >= min_column_height
            and sum(box[3] - box[1] for box in paragraphs if box[0] >= end - 1) >= min_column_height]


def low_coverage_strips(boxes: list[Box]) -> list[tuple[float, float]]:
    """Strips between piles of boxes where the boxes' heights, summed, are low."""
    edges_x = sorted({x for box in boxes for x in (box[0], box[2])})
    piles = [(start, end, sum(box[3] - box[1] for box in boxes if box[0] <= start and box[2] >= end))
             for start, end in zip(edges_x, edges_x[1:])]
    if not piles:
        return []
    low = max(pile for _start, _end, pile in piles) * GUTTER_MAX_COVERAGE
    strips, strip, after_column = [], None, False
    for start, end, pile in piles:
        if pile > low:
            if strip is not None and after_column:
                strips.append(strip)
            strip, after_column = None, True
        else:
            strip = (strip[0], end) if strip else (start, end)
    return strips


def crosses_any(bbox: Box, gutters: list[tuple[float, float]]) -> bool:
    """Whether a block spans a gutter, or sits in one (a centred page number)."""
    center = (bbox[0] + bbox[2]) / 2
    return any((bbox[0] < start and bbox[2] > end) or start <= center <= end for start, end in gutters)


def column_of(bbox: Box, gutters: list[tuple[float, float]]) -> int:
    center = (bbox[0] + bbox[2]) / 2
    return sum(1 for _start, end in gutters if end <= center)


# --- geometry -----------------------------------------------------------------------------


def union(first: Box, second: Box) -> Box:
    return (min(first[0], second[0]), min(first[1], second[1]), max(first[2], second[2]), max(first[3], second[3]))


def middle_y(bbox: Box) -> float:
    return (bbox[1] + bbox[3]) / 2


def center_inside_any(bbox, boxes) -> bool:
    x, y = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    return any(box[0] <= x <= box[2] and box[1] <= y <= box[3] for box in boxes)


def mostly_inside_any(bbox: Box, tables: list[FoundTable]) -> bool:
    return any(area(intersection(bbox, table.bbox)) >= area(bbox) * 0.5 > 0 for table in tables)


def intersection(first: Box, second: Box) -> Box:
    return (max(first[0], second[0]), max(first[1], second[1]), min(first[2], second[2]), min(first[3], second[3]))


def area(bbox: Box) -> float:
    return max(0.0, bbox[2] - bbox[0]) * max(0.0, bbox[3] - bbox[1])


def to_pixels(bbox: Box, zoom: float) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = bbox
    return (round(x1 * zoom), round(y1 * zoom), round(x2 * zoom), round(y2 * zoom))
