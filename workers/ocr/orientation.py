"""Which way up a scanned page's content is, and reading it that way. No Django here.

A sheet fed sideways or upside down is scanned with its content turned 90, 180 or 270
degrees and no /Rotate to say so. RapidOCR reads text lines in their own direction only
when they are upright or upside down (its line classifier flips the latter one by one,
which keeps the words but reverses the order of the lines). So the page image is read
at each of the four turns, small and without the line classifier, and the turn whose
lines are read most confidently wins; the page is then read at full size that way up,
and the boxes are mapped back into the frame of the rendered page image.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# A text line as RapidOCR returns it: the corners of its box (x, y) in image pixels,
# its text, its confidence (0-1). ``Ocr`` is a RapidOCR instance: image -> (lines, timings).
Points = Sequence[Sequence[float]]
OcrLine = tuple[Points, str, float]
Ocr = Callable[..., tuple[list[OcrLine] | None, Any]]

# The side of the small image the turns are compared on: lines of body text at 200 DPI
# stay legible to RapidOCR at about a third of that size.
PROBE_SIDE = 1024
# An upright reading this confident needs no comparison (mean line score, and share of
# lines wider than tall): it is what an upright page gives, and a turned one does not.
UPRIGHT_SCORE = 0.9
UPRIGHT_WIDE_SHARE = 0.8
# A line RapidOCR "reads" in a scribble or a stamp is short and unsure ("GX" at 0.53,
# "C" at 0.68); a real short line (a page number) is read surely.
SHORT_LINE_CHARS = 3
SHORT_LINE_MIN_SCORE = 0.8


@dataclass(frozen=True)
class Reading:
    """OCR lines ``[(points, text, score)]`` in the upright frame (the image turned
    ``turn`` degrees counter-clockwise), and ``turn``: how far the content was turned
    clockwise (0/90/180/270)."""

    lines: list[OcrLine]
    turn: int


def read_upright(image: np.ndarray, ocr: Ocr) -> Reading:
    """Read an RGB page image whichever way up its content is. ``ocr`` is a RapidOCR."""
    lines = ocr_lines(ocr, image, use_cls=False)
    if looks_upright(lines):
        return Reading(ocr_lines(ocr, image), 0)
    turn = best_turn(image, ocr)
    return Reading(ocr_lines(ocr, np.ascontiguousarray(np.rot90(image, k=turn // 90))), turn)


def ocr_lines(ocr: Ocr, image: np.ndarray, *, use_cls: bool = True) -> list[OcrLine]:
    lines, _elapsed = ocr(image, use_cls=use_cls)
    return [line for line in lines or [] if is_text(str(line[1]), float(line[2]))]


def is_text(text: str, score: float) -> bool:
    alnum = sum(1 for character in text if character.isalnum())
    return alnum > 0 and (alnum >= SHORT_LINE_CHARS or score >= SHORT_LINE_MIN_SCORE)


def looks_upright(lines: list[OcrLine]) -> bool:
    if not lines:
        return False
    mean_score = sum(float(score) for _points, _text, score in lines) / len(lines)
    return mean_score >= UPRIGHT_SCORE and wide_share(lines) >= UPRIGHT_WIDE_SHARE


def wide_share(lines: list[OcrLine]) -> float:
    wide = 0
    for points, _text, _score in lines:
        xs, ys = [point[0] for point in points], [point[1] for point in points]
        wide += (max(xs) - min(xs)) > (max(ys) - min(ys))
    return wide / len(lines) if lines else 0.0


def best_turn(image: np.ndarray, ocr: Ocr) -> int:
    """The counter-clockwise turn (0/90/180/270) that makes the content upright: the one
    whose small reading has the most confidently read characters on wide lines."""
    probe = downscale(image, PROBE_SIDE)
    scores = {}
    for turn in (0, 90, 180, 270):
        lines = ocr_lines(ocr, np.ascontiguousarray(np.rot90(probe, k=turn // 90)), use_cls=False)
        scores[turn] = sum(float(score) * len(text) for points, text, score in lines if is_wide(points))
    return max(scores, key=lambda turn: (scores[turn], turn == 0))


def is_wide(points: Points) -> bool:
    xs, ys = [float(point[0]) for point in points], [float(point[1]) for point in points]
    return (max(xs) - min(xs)) > (max(ys) - min(ys))


def downscale(image: np.ndarray, side: int) -> np.ndarray:
    height, width = image.shape[:2]
    step = max(1, int(np.ceil(max(height, width) / side)))
    return image[::step, ::step]


def unturn_box(bbox: Sequence[float], turn: int, width: int, height: int) -> tuple[int, int, int, int]:
    """A box of the upright frame in the frame of the original ``width`` x ``height`` image."""
    x1, y1, x2, y2 = bbox
    points = unturn_points([[x1, y1], [x2, y2]], turn, width, height)
    xs, ys = [point[0] for point in points], [point[1] for point in points]
    return (round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys)))


def unturn_points(points: Points, turn: int, width: int, height: int) -> list[list[float]]:
    """Points of the image turned ``turn`` degrees counter-clockwise (``np.rot90``) back
    in the frame of the original ``width`` x ``height`` image."""
    mapped = []
    for x, y in points:
        if turn == 90:  # rot90 k=1: original (x, y) went to (y, width - x)
            mapped.append([width - y, x])
        elif turn == 180:
            mapped.append([width - x, height - y])
        elif turn == 270:  # k=3: original (x, y) went to (height - y, x)
            mapped.append([y, height - x])
        else:
            mapped.append([x, y])
    return mapped
