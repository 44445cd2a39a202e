"""Reading order of a page's regions for the text-layer engine: page header, the body
column by column, page footer. No Django here."""

from dataclasses import dataclass
from itertools import pairwise

from workers.ocr.base import HEADER_FOOTER
from workers.ocr.textlayer_geometry import Box, middle_y

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


@dataclass(frozen=True)
class Region:
    """A cell before ordering, in PDF points."""

    bbox: Box
    category: str
    text: str = ""
    rows: int = 1
    vertical: bool = False  # a tategaki column


def reading_order(regions: list[Region]) -> list[Region]:
    """Page header, then the body column by column, then page footer.

    Full-width regions (a title, a wide figure) cut the page into bands; within a band,
    each column is read top to bottom before the next, left to right.
    """
    headers = [region for region in regions if region.category == "Page-header"]
    footers = [region for region in regions if region.category == "Page-footer"]
    body = [region for region in regions if region.category not in HEADER_FOOTER]
    ordered = vertical_order(body) if mostly_vertical(body) else body_order(body)
    return by_position(headers) + ordered + by_position(footers)


def mostly_vertical(regions: list[Region]) -> bool:
    """A page written in tategaki: most of its text in vertical columns."""
    vertical = sum(len(region.text) for region in regions if region.vertical)
    return vertical > sum(len(region.text) for region in regions if not region.vertical)


def vertical_order(regions: list[Region]) -> list[Region]:
    """Tategaki: what stands above the columns first, then the columns from the right
    (each top to bottom), then what stands below them."""
    columns = [region for region in regions if region.vertical]
    top = min(region.bbox[1] for region in columns)
    above = [region for region in regions if not region.vertical and middle_y(region.bbox) < top]
    below = [region for region in regions if not region.vertical and all(region is not other for other in above)]
    return (
        by_position(above) + sorted(columns, key=lambda region: (-region.bbox[2], region.bbox[1])) + by_position(below)
    )


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
    return [
        (start, end)
        for start, end in low_coverage_strips([text.bbox for text in columnar])
        if end - start >= MIN_GUTTER_PT
        and sum(box[3] - box[1] for box in paragraphs if box[2] <= start + 1) >= min_column_height
        and sum(box[3] - box[1] for box in paragraphs if box[0] >= end - 1) >= min_column_height
    ]


def low_coverage_strips(boxes: list[Box]) -> list[tuple[float, float]]:
    """Strips between piles of boxes where the boxes' heights, summed, are low."""
    edges_x = sorted({x for box in boxes for x in (box[0], box[2])})
    piles = [
        (start, end, sum(box[3] - box[1] for box in boxes if box[0] <= start and box[2] >= end))
        for start, end in pairwise(edges_x)
    ]
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
