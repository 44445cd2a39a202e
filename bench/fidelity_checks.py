"""Named checks on a document's Markdown, in the style of olmOCR-bench
(allenai/olmocr, olmocr/bench/tests.py): a check is a small fact about what the page
shows that any faithful Markdown keeps, whatever its formatting: a text is present,
a text is absent, A comes before B, a table has a cell at a row and column, a text is
a heading.

Text is compared after normalisation (``normalize``): Markdown and HTML marks removed,
Unicode compatibility forms folded (the "ﬁ" ligature reads "fi"), typographic quotes and
dashes made plain, whitespace collapsed. Case and hyphens are kept.
"""

import html
import re
import unicodedata
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import ClassVar

PLAIN = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00a0": " ",
        "\u2013": "-",
        "\u2014": "-",
        "\u00ad": "",
    }
)
MARKUP = re.compile(r"[*_#`]+|^\s*>+", re.MULTILINE)
TAG = re.compile(r"<[^>]+>")


def normalize(text: str) -> str:
    text = html.unescape(TAG.sub(" ", text))
    text = unicodedata.normalize("NFKC", text).translate(PLAIN)
    return re.sub(r"\s+", " ", MARKUP.sub("", text)).strip()


@dataclass(frozen=True)
class Present:
    """The text appears (once normalised) somewhere in the Markdown."""

    text: str
    kind: ClassVar[str] = "present"

    def passes(self, markdown: str) -> bool:
        return normalize(self.text) in normalize(markdown)


@dataclass(frozen=True)
class Absent:
    """The text does not appear: garbage a wrong reading produces, or what must be left out."""

    text: str
    kind: ClassVar[str] = "absent"

    def passes(self, markdown: str) -> bool:
        return normalize(self.text) not in normalize(markdown)


@dataclass(frozen=True)
class Order:
    """Both texts appear, the first occurrence of ``before`` ending before the first
    occurrence of ``after`` (reading order across columns, lines and pages)."""

    before: str
    after: str
    kind: ClassVar[str] = "order"

    def passes(self, markdown: str) -> bool:
        text = normalize(markdown)
        before, after = text.find(normalize(self.before)), text.find(normalize(self.after))
        return before >= 0 and after >= 0 and before + len(normalize(self.before)) <= after


@dataclass(frozen=True)
class TableCell:
    """Some table (HTML or pipe table) holds ``text`` at ``row`` and ``column``, 0-based,
    row 0 being the header row; a cell spanning columns counts in each."""

    text: str
    row: int
    column: int
    kind: ClassVar[str] = "table_cell"

    def passes(self, markdown: str) -> bool:
        wanted = normalize(self.text)
        return any(normalize(cell) == wanted for cell in cells_at(markdown, self.row, self.column))


@dataclass(frozen=True)
class Heading:
    """A Markdown heading line (``#`` to ``######``) whose text contains ``text``."""

    text: str
    kind: ClassVar[str] = "heading"

    def passes(self, markdown: str) -> bool:
        wanted = normalize(self.text)
        return any(wanted in normalize(line) for line in markdown.splitlines() if re.match(r"\s*#{1,6}\s", line))


Check = Present | Absent | Order | TableCell | Heading
CHECK_KINDS = tuple(kind.kind for kind in (Present, Absent, Order, TableCell, Heading))


def describe(check: Check) -> str:
    fields = ", ".join(f"{name}={value!r}" for name, value in vars(check).items())
    return f"{check.kind}({fields})"


# --- tables in Markdown ----------------------------------------------------------------


def cells_at(markdown: str, row: int, column: int) -> list[str]:
    """The text at ``row``/``column`` of each table that has such a cell."""
    return [rows[row][column] for rows in tables(markdown) if row < len(rows) and column < len(rows[row])]


def tables(markdown: str) -> list[list[list[str]]]:
    """Every table of the Markdown as rows of cell texts: HTML tables, then pipe tables."""
    parser = HtmlTables()
    parser.feed(markdown)
    parser.close()
    return parser.tables + pipe_tables(markdown)


class HtmlTables(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None
        self.span = 1

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self.cell, self.span = [], int(dict(attrs).get("colspan") or 1)
        elif tag == "br" and self.cell is not None:
            self.cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].extend(["".join(self.cell)] * max(1, self.span))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


PIPE_SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")


def pipe_tables(markdown: str) -> list[list[list[str]]]:
    found, rows = [], []
    for line in [*markdown.splitlines(), ""]:
        line = line.strip()
        if line.startswith("|"):
            if not PIPE_SEPARATOR.match(line):
                rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip("|"))])
        elif rows:
            found.append(rows)
            rows = []
    return found
