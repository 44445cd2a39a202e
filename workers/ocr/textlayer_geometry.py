"""Boxes in PDF points, (x0, y0, x1, y1) with y downwards, as the text-layer engine uses them."""

from collections.abc import Iterable, Sequence

Box = tuple[float, float, float, float]

# Share of the page height at the top/bottom where running headers and footers sit.
MARGIN_BAND = 0.07


def union(first: Box, second: Box) -> Box:
    return (min(first[0], second[0]), min(first[1], second[1]), max(first[2], second[2]), max(first[3], second[3]))


def middle_y(bbox: Box) -> float:
    return (bbox[1] + bbox[3]) / 2


def center_inside_any(bbox: Sequence[float], boxes: Iterable[Sequence[float]]) -> bool:
    x, y = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    return any(box[0] <= x <= box[2] and box[1] <= y <= box[3] for box in boxes)


def mostly_inside_any(bbox: Box, boxes: list[Box]) -> bool:
    return any(area(intersection(bbox, box)) >= area(bbox) * 0.5 > 0 for box in boxes)


def intersection(first: Box, second: Box) -> Box:
    return (max(first[0], second[0]), max(first[1], second[1]), min(first[2], second[2]), min(first[3], second[3]))


def area(bbox: Box) -> float:
    return max(0.0, bbox[2] - bbox[0]) * max(0.0, bbox[3] - bbox[1])


def to_pixels(bbox: Box, zoom: float) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = bbox
    return (round(x1 * zoom), round(y1 * zoom), round(x2 * zoom), round(y2 * zoom))
