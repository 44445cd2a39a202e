"""Ruled tables for the text-layer engine: found with PyMuPDF's find_tables, kept when
they look like tables, written as dots.ocr writes tables (HTML). No Django here."""

import html
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pymupdf
from pymupdf.table import Table

from workers.ocr.textlayer_frame import display_drawings
from workers.ocr.textlayer_geometry import MARGIN_BAND, Box, area, intersection
from workers.ocr.textlayer_lines import CONTROL_CHARACTERS, LIGATURES

logger = logging.getLogger(__name__)

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
# Both halves of find_tables grow faster than the vector drawing on the page: the
# layout model (10 s for a table beside a scatter plot of 1,200 filled squares, 17 s
# when the squares are one path, 1 s without the plot) and the joining of neighbouring
# paths into candidate boxes (a page of that kind took 58 s), all under the
# process-wide PyMuPDF lock. Past MAX_TABLE_ITEMS drawing items (lines, curves,
# rectangles, in however many paths) the table step skips the layout model and sees
# only the straight strokes of at least STROKE_MIN_PT (a table's rules; a plot marker
# is a few points wide): such a page takes about as long as a plain one.
MAX_TABLE_ITEMS = 1000
STROKE_MIN_PT = 8.0


@dataclass(frozen=True)
class FoundTable:
    bbox: Box
    html: str
    cell_boxes: list[Box]


def find_ruled_tables(page: pymupdf.Page, text_lines: list[Box]) -> list[FoundTable]:
    """Tables drawn with rules, as PyMuPDF finds them, kept when they look like tables.
    Boxes are in the displayed frame (find_tables derotates a rotated page itself)."""
    drawings = display_drawings(page)
    if not has_table_rules(page, text_lines, drawings):
        return []
    try:
        if drawing_items(drawings) > MAX_TABLE_ITEMS:
            located, ruled = page.find_tables(use_layout=False, paths=line_like(drawings)).tables, list[Table]()
        else:
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
            found.append(
                FoundTable(
                    tuple(table.bbox),
                    table_html(grid, boxes),
                    [tuple(box) for row in boxes for box in row if box is not None],
                )
            )
    return found


def ruled_match(located: Table, ruled: list[Table]) -> Table | None:
    """The ruled table covering most of a located table, if one covers nearly all of it."""
    overlap, best = max(
        ((area(intersection(tuple(located.bbox), tuple(table.bbox))), table) for table in ruled),
        key=lambda pair: pair[0],
        default=(0.0, None),
    )
    return best if overlap >= area(tuple(located.bbox)) * 0.8 > 0 else None


def unique(tables: Iterable[Table]) -> list[Table]:
    kept: list[Table] = []
    for table in tables:
        if all(table is not other for other in kept):
            kept.append(table)
    return kept


def drawing_items(drawings: list[dict[str, Any]]) -> int:
    return sum(len(path["items"]) for path in drawings)


def line_like(drawings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The straight horizontal and vertical strokes (lines, rectangle edges) of at least
    STROKE_MIN_PT, each path keeping only those: what a ruled table is drawn with, and
    not the markers, curves and hatching of a plot."""
    kept = []
    for path in drawings:
        items = [item for item in path["items"] if is_long_stroke(item)]
        if items:
            kept.append(dict(path, items=items, closePath=False, rect=pymupdf.Rect(path["rect"])))
    return kept


def is_long_stroke(item: tuple[Any, ...]) -> bool:
    if item[0] == "l":
        start, end = item[1], item[2]
        straight = abs(start.x - end.x) < 1 or abs(start.y - end.y) < 1
        return bool(straight and abs(start - end) >= STROKE_MIN_PT)
    if item[0] == "re":
        return bool(max(item[1].width, item[1].height) >= STROKE_MIN_PT)
    return False


def has_table_rules(page: pymupdf.Page, text_lines: list[Box], drawings: list[dict[str, Any]] | None = None) -> bool:
    """Whether the page has rules laid out like a table's, with text rows between them.
    ``drawings``: the page's drawings in the displayed frame, when already read."""
    centers = [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in text_lines]
    rules = horizontal_rules(page, display_drawings(page) if drawings is None else drawings)
    for left, right, heights in aligned_rules(rules):
        gaps = list(pairwise(heights))
        with_text = sum(1 for top, bottom in gaps if any(left <= x <= right and top < y < bottom for x, y in centers))
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


def horizontal_rules(page: pymupdf.Page, drawings: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    """(x0, x1, y) of horizontal lines and rectangle edges in the page body."""
    rules = []
    for path in drawings:
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
        [
            (char["c"], (char["bbox"][0] + char["bbox"][2]) / 2, (char["bbox"][1] + char["bbox"][3]) / 2)
            for span in line["spans"]
            for char in span["chars"]
        ]
        for block in textpage.extractRAWDICT()["blocks"]
        if block["type"] == 0
        for line in block["lines"]
    ]


def cell_text(lines: list[list[tuple[str, float, float]]], box: Sequence[float]) -> str:
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


def table_html(grid: list[list[str | None]], boxes: list[list[Sequence[float] | None]]) -> str:
    """The table as dots.ocr writes tables: HTML, first row as header cells, merged cells
    as colspan/rowspan (worked out from the cell rectangles)."""
    column_edges = edges([(box[0], box[2]) for row in boxes for box in row if box is not None])
    row_edges = edges([(box[1], box[3]) for row in boxes for box in row if box is not None])
    rows_html = []
    for row_index, (texts, row_boxes) in enumerate(zip(grid, boxes, strict=True)):
        tag = "th" if row_index == 0 else "td"
        cells_html = []
        for text, box in zip(texts, row_boxes, strict=True):
            if box is None:
                continue  # covered by a merged cell to its left or above
            spans = span_attributes(
                spans_between(column_edges, box[0], box[2]), spans_between(row_edges, box[1], box[3])
            )
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
