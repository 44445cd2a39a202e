"""Filled form fields next to their labels, for the text-layer engine. No Django here.

MuPDF reads the value of an unflattened form field (a widget's appearance) as a block of
its own, and a field box often starts a point or two above its label's line, so the
value came before its label as a separate paragraph. Here the text drawn inside a
field moves into the label's block, right after the label's line (the nearest line
ending to its left on the same visual line), where joining lines on one baseline makes
"Organisation: Acme Ltd". A value with no label on its line stays where it is.
"""

from typing import Any, NamedTuple

import pymupdf

from workers.ocr.textlayer_geometry import Box, center_inside_any, union

# The label and the value share a line when their heights overlap by this much of the smaller.
SAME_LINE_OVERLAP = 0.5
# A label ends at most this far right of where the value starts (boxes touch or overlap slightly).
LABEL_OVERLAP_PT = 2.0


def field_boxes(page: pymupdf.Page) -> list[Box]:
    """The boxes of the page's form fields, in the displayed frame."""
    if page.first_widget is None:  # most pages: no need to build the list
        return []
    matrix = page.rotation_matrix
    return [tuple(pymupdf.Rect(widget.rect) * matrix) for widget in page.widgets()]


def place_field_values(layout: dict[str, Any], fields: list[Box]) -> None:
    """Move the text of each filled field after its label's line, in place."""
    for field in fields:
        values = [
            (block, line)
            for block in text_blocks(layout)
            for line in block["lines"]
            if center_inside_any(line["bbox"], [field])
        ]
        if not values:
            continue
        label = label_of(layout, values[0][1]["bbox"], fields)
        if label is None:
            continue
        moved = [line for _block, line in values]
        for block, line in values:
            block["lines"] = [kept for kept in block["lines"] if kept is not line]
        label_block, label_line = label.block, label.line
        at = next(index for index, line in enumerate(label_block["lines"]) if line is label_line) + 1
        label_block["lines"][at:at] = moved
        for line in moved:
            label_block["bbox"] = union(tuple(label_block["bbox"]), tuple(line["bbox"]))
    layout["blocks"] = [block for block in layout["blocks"] if block["type"] != 0 or block["lines"]]


def text_blocks(layout: dict[str, Any]) -> list[dict[str, Any]]:
    return [block for block in layout["blocks"] if block["type"] == 0]


class LabelLine(NamedTuple):
    """A label's line on a page, and the block holding it (MuPDF's layout dicts)."""

    block: dict[str, Any]
    line: dict[str, Any]


def label_of(layout: dict[str, Any], value: Box, fields: list[Box]) -> LabelLine | None:
    """The block and line of the label left of a value on the same visual line, if any."""
    best, best_right = None, float("-inf")
    for block in text_blocks(layout):
        for line in block["lines"]:
            box = line["bbox"]
            if center_inside_any(box, fields) or box[2] > value[0] + LABEL_OVERLAP_PT:
                continue
            if same_line(box, value) and box[2] > best_right and line["text"]:
                best, best_right = LabelLine(block, line), box[2]
    return best


def same_line(first: Box, second: Box) -> bool:
    overlap = min(first[3], second[3]) - max(first[1], second[1])
    smaller = min(first[3] - first[1], second[3] - second[1])
    return smaller > 0 and overlap >= smaller * SAME_LINE_OVERLAP
