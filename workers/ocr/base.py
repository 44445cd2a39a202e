"""The engine protocol every OCR engine implements (DESIGN.md section 4). No Django here.

An engine turns one ``PdfPage`` into layout cells in the dots.ocr schema
``{bbox, category, text}``: bbox ``[x1, y1, x2, y2]`` in pixels of the rendered page
image, category one of ``CATEGORIES``, text formatted as dots.ocr formats it (Markdown
for text, LaTeX for Formula, HTML for Table, empty for Picture).
"""

from dataclasses import dataclass
from typing import Any, Protocol

from workers.pdf import PdfPage

# The layout categories of dots.ocr (dots_ocr/utils/prompts.py, prompt_layout_all_en).
CATEGORIES = (
    "Caption",
    "Footnote",
    "Formula",
    "List-item",
    "Page-footer",
    "Page-header",
    "Picture",
    "Section-header",
    "Table",
    "Text",
    "Title",
)
HEADER_FOOTER = ("Page-header", "Page-footer")
# Prompt modes of dots.ocr (dots_ocr/utils/prompts.py, dict_promptmode_to_prompt).
PROMPT_MODES = ("prompt_layout_all_en", "prompt_layout_only_en", "prompt_ocr", "prompt_grounding_ocr")
DEFAULT_PROMPT_MODE = "prompt_layout_all_en"


@dataclass(frozen=True)
class Cell:
    bbox: tuple[int, int, int, int]
    category: str
    text: str = ""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown layout category {self.category!r}")

    def as_dict(self) -> dict[str, Any]:
        cell = {"bbox": list(self.bbox), "category": self.category}
        if self.category != "Picture":
            cell["text"] = self.text
        return cell


@dataclass(frozen=True)
class PageOcr:
    """What an engine made of one page: its cells, which path produced them (``engine``,
    a short label for metrics), why that path (``reason``, a sentence for the user:
    "textlayer rejected: 35% of 17 words look like words; rapidocr used"), and, when
    the page shows ink but nothing could be read from it, why (``error``): the page is
    then recorded as failed, and its job completes saying so."""

    cells: list[Cell]
    engine: str
    reason: str = ""
    error: str = ""


class EngineError(Exception):
    """The engine could not produce a result for a page; the message says why."""


class OcrEngine(Protocol):
    name: str

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        """Layout cells of one page. Raises EngineError when the page cannot be read."""
        ...
