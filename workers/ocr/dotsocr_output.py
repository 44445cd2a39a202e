"""Reading what dots.ocr answers: layout JSON, its salvageable prefix, plain OCR text.

Boxes stay in the model's input pixels here; ``workers.ocr.dotsocr_page`` maps them to
the page. No Django here.
"""

import json
import re
from collections import Counter
from typing import Any, TypedDict

from workers.ocr.base import CATEGORIES

# dots_ocr/utils/output_cleaner.py (remove_duplicate_category_text_pairs_and_bbox): a
# repetition loop shows as the same box twice, or the same category and text 5 times.
DUPLICATE_BBOX_LIMIT = 2
DUPLICATE_TEXT_LIMIT = 5
# More consecutive identical lines than this are a loop in plain OCR text, not content.
MAX_REPEATED_LINES = 2
CODE_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$")


class RawCell(TypedDict):
    """A layout cell as the model answers it, checked (`normalized_cell`); bbox in model pixels."""

    bbox: list[float]  # [x1, y1, x2, y2]
    category: str
    text: str


def parse_layout(content: str) -> list[RawCell] | None:
    """The cells of a complete, well-formed layout answer; None if it is not one.

    An empty list counts as not well-formed: a page the model saw nothing on is
    re-asked, never silently accepted.
    """
    try:
        answer = json.loads(strip_code_fence(content))
    except (json.JSONDecodeError, TypeError):
        return None
    if isinstance(answer, dict):  # one element, not wrapped in a list
        answer = [answer]
    if not isinstance(answer, list) or not answer:
        return None
    cells = [normalized_cell(item) for item in answer]
    return None if any(cell is None for cell in cells) else [cell for cell in cells if cell is not None]


def salvage_layout(content: str) -> list[RawCell]:
    """The complete, valid cells of a cut-off or malformed answer, in order, loops removed.

    Decodes one element at a time, so a brace inside a LaTeX or HTML text cannot split
    an element (the reference cleaner's regex can), and a missing comma between two
    elements is tolerated as the reference cleaner tolerates it.
    """
    cells = [cell for cell in map(normalized_cell, complete_elements(strip_code_fence(content))) if cell is not None]
    return without_repetitions(cells)


def complete_elements(content: str) -> list[Any]:
    start = first_of(content, "[{")
    if start < 0:
        return []
    position = start + 1 if content[start] == "[" else start
    decoder = json.JSONDecoder()
    elements: list[Any] = []
    while True:
        position = skip_separators(content, position)
        if position >= len(content) or content[position] != "{":
            return elements
        try:
            element, position = decoder.raw_decode(content, position)
        except json.JSONDecodeError:
            return elements  # the cut-off element
        elements.append(element)


def normalized_cell(item: Any) -> RawCell | None:
    """A cell with a 4-number bbox, a known category and string text; None if unusable."""
    if not isinstance(item, dict):
        return None
    bbox = item.get("bbox")
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(value) for value in bbox)):
        return None
    category = item.get("category")
    if not isinstance(category, str):
        return None
    # An unknown label (the model's "Other", say) still carries text worth keeping.
    category = category if category in CATEGORIES else "Text"
    text = item.get("text", "")
    text = "" if category == "Picture" or text is None else str(text)
    return {"bbox": bbox, "category": category, "text": text}


def without_repetitions(cells: list[RawCell]) -> list[RawCell]:
    """Drop later copies of a repeated box or of a category-text pair seen 5+ times."""
    bbox_counts = Counter(tuple(cell["bbox"]) for cell in cells)
    text_counts = Counter((cell["category"], cell["text"]) for cell in cells)
    seen_bboxes: set[tuple[float, ...]] = set()
    seen_texts: set[tuple[str, str]] = set()
    kept: list[RawCell] = []
    for cell in cells:
        bbox, text = tuple(cell["bbox"]), (cell["category"], cell["text"])
        if bbox_counts[bbox] >= DUPLICATE_BBOX_LIMIT and bbox in seen_bboxes:
            continue
        if text_counts[text] >= DUPLICATE_TEXT_LIMIT and text in seen_texts:
            continue
        seen_bboxes.add(bbox)
        seen_texts.add(text)
        kept.append(cell)
    return kept


def ocr_text(content: str, *, truncated: bool) -> str:
    """Plain OCR text; a cut-off answer loses its partial last line and repeated lines."""
    text = content or ""
    if truncated:
        text = text.rsplit("\n", 1)[0] if "\n" in text else text
        text = without_repeated_lines(text)
    return text.strip()


def without_repeated_lines(text: str) -> str:
    kept: list[str] = []
    run = 0
    for line in text.split("\n"):
        run = run + 1 if kept and line == kept[-1] and line.strip() else 1
        if run <= MAX_REPEATED_LINES:
            kept.append(line)
    return "\n".join(kept)


def strip_code_fence(content: str) -> str:
    return CODE_FENCE.sub("", content or "")


def first_of(text: str, characters: str) -> int:
    positions = [index for index in (text.find(character) for character in characters) if index >= 0]
    return min(positions, default=-1)


def skip_separators(text: str, position: int) -> int:
    while position < len(text) and (text[position].isspace() or text[position] == ","):
        position += 1
    return position


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
