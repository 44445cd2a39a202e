"""The page kinds of issue 15 as fidelity documents: the generators of
bench/trust_samples.py and bench/reading_samples.py, each with the checks a faithful
Markdown passes, written from what the page shows (the strings the generator draws),
never from any engine's output. Imported by ``bench.documents.all_documents``.

Kind 2 (a page of ink without text) has no document here: the page shows no text, so
there is nothing a text check could require, and a check for "no garbage" would have to
guess which garbage to forbid. Its outcome (a reason on the page) is tested in
tests/test_page_reasons.py instead.
"""

from itertools import pairwise

from bench import reading_samples as reading
from bench import trust_samples as trust
from bench.documents import Document, generated
from bench.fidelity_checks import Absent, Heading, Order, Present, TableCell

MAINTENANCE = (trust.MAINTENANCE_TITLE, *trust.MAINTENANCE_SENTENCES)


def in_order(lines) -> list[Order]:
    return [Order(before, after) for before, after in pairwise(lines)]


# --- kind 1: text layers that do not say what the page shows ----------------------------


@generated
def shifted_tounicode() -> Document:
    """Sample (a): Helvetica whose ToUnicode sends every code to code - 29."""
    return Document(
        "issue15-shifted-tounicode",
        trust.shifted_tounicode(),
        [
            Heading(trust.MAINTENANCE_TITLE),
            *map(Present, MAINTENANCE),
            *in_order(MAINTENANCE),
            Absent("0DLQWHQDQFH"),
            Absent("5HSRUW"),  # "Maintenance Report" through the shifted map
        ],
    )


@generated
def type3_without_unicode() -> Document:
    """Sample (b): a Type 3 font from real glyph outlines, codes 1..N, no ToUnicode."""
    return Document(
        "issue15-type3-font",
        trust.type3_font_text(),
        [
            Heading(trust.TYPE3_LINES[0]),
            *map(Present, trust.TYPE3_LINES),
            *in_order(trust.TYPE3_LINES),
        ],
    )


@generated
def invisible_ocr_layer() -> Document:
    """A page image under a poor invisible (render mode 3) OCR layer."""
    return Document(
        "issue15-invisible-ocr-layer",
        trust.invisible_ocr_layer(),
        [
            *map(Present, trust.SCAN_LINES),
            *in_order(trust.SCAN_LINES),
            Absent("Hcrbonr insqcction uotes"),
            Absent("wcstcru qicr"),  # the hidden layer's words
        ],
    )


@generated
def scrambled_tounicode() -> Document:
    """Another of kind 1: a ToUnicode map that permutes the letters (a map written for another subset)."""
    return Document(
        "issue15-scrambled-tounicode",
        trust.scrambled_tounicode(),
        [
            *map(Present, MAINTENANCE),
            *in_order(MAINTENANCE),
        ],
    )


@generated
def cid_font_without_tounicode() -> Document:
    """Another of kind 1: an embedded TrueType (Type0, Identity-H) font with no ToUnicode map."""
    return Document(
        "issue15-cid-font-no-tounicode",
        trust.cid_font_text("none"),
        [
            *map(Present, MAINTENANCE),
            *in_order(MAINTENANCE),
        ],
    )


@generated
def unmapped_tounicode() -> Document:
    """Another of kind 1: every letter and digit mapped to U+FFFD."""
    return Document(
        "issue15-fffd-tounicode",
        trust.unmapped_tounicode(),
        [
            *map(Present, MAINTENANCE),
            *in_order(MAINTENANCE),
            Absent("\ufffd"),
        ],
    )


# --- kind 3: orientation -----------------------------------------------------------------


@generated
def rotate_90_report() -> Document:
    """The issue's sample: content drawn sideways on a portrait MediaBox with /Rotate 90."""
    title = "Quarterly Field Report"
    return Document(
        "issue15-rotate-90",
        reading.rotated_report(90),
        [
            Heading(title),
            Present("Alpha lorem ipsum dolor sit amet"),
            Order(title, "Alpha"),
            Order("Alpha", "Bravo"),
            Order("Bravo", "Charlie"),
            Order("alpha-end.", "Bravo"),
            Order("bravo-end.", "Charlie"),
        ],
    )


@generated
def turned_scan_90() -> Document:
    """A scan (one image, no text layer, no /Rotate) whose content is turned 90 degrees."""
    return Document(
        "issue15-turned-scan-90",
        trust.turned_scan(90),
        [
            *map(Present, trust.SCAN_LINES),
            *in_order(trust.SCAN_LINES),
        ],
    )


@generated
def rotate_270_report() -> Document:
    """Another of kind 3: the same report on a page with /Rotate 270."""
    title = "Quarterly Field Report"
    return Document(
        "issue15-rotate-270",
        reading.rotated_report(270),
        [
            Order(title, "Alpha"),
            Order("alpha-end.", "Bravo"),
            Order("bravo-end.", "Charlie"),
        ],
    )


@generated
def turned_scan_180() -> Document:
    """Another of kind 3: a scan turned upside down."""
    return Document(
        "issue15-turned-scan-180",
        trust.turned_scan(180),
        [
            *map(Present, trust.SCAN_LINES),
            *in_order(trust.SCAN_LINES),
        ],
    )


# --- kind 4: writing direction -----------------------------------------------------------


@generated
def hebrew_visual_order() -> Document:
    """Right-aligned Hebrew stored in visual order; its third line mixes words with 4471 and 12."""
    lines = reading.HEBREW_LINES
    return Document(
        "issue15-hebrew-visual-order",
        reading.rtl_visual_order(),
        [
            *map(Present, lines),
            *in_order(lines),
        ],
    )


@generated
def arabic_visual_order() -> Document:
    """Arabic stored in visual order, a line mixing words with 4471 and 12."""
    lines = reading.ARABIC_LINES
    return Document(
        "issue15-arabic-visual-order",
        reading.rtl_visual_order(lines, script="arabic"),
        [
            *map(Present, lines),
            *in_order(lines),
        ],
    )


@generated
def tategaki() -> Document:
    """Vertical Japanese: columns read from the right, each top to bottom, no spaces between characters."""
    columns = reading.TATEGAKI_COLUMNS
    return Document("issue15-tategaki", reading.tategaki(), [*map(Present, columns), *in_order(columns)])


@generated
def tategaki_rotated() -> Document:
    """Another of kind 4: vertical Japanese drawn as lines of text turned a quarter clockwise."""
    columns = reading.TATEGAKI_COLUMNS
    return Document(
        "issue15-tategaki-rotated", reading.tategaki(writing="rotated"), [*map(Present, columns), *in_order(columns)]
    )


# --- kinds 5 and 6: reading order on a line, hyphens -------------------------------------


@generated
def filled_form() -> Document:
    """Filled text fields whose boxes start a point above their labels."""
    return Document(
        "issue15-filled-form",
        reading.filled_form(),
        [
            *(Present(f"{label} {value}") for label, value in reading.FORM_FIELDS),
            *(Order(label, value) for label, value in reading.FORM_FIELDS),
            Order("Registration", "Organisation:"),
        ],
    )


@generated
def hyphens() -> Document:
    """ "infor-" + "mation" split by the line break; "price-" + "determining" a real
    compound, written whole on page 2."""
    return Document(
        "issue15-hyphens",
        reading.hyphenated_text(),
        [
            Present("more information about the market"),
            Absent("infor-"),
            Present("price-determining factors that shape"),
            Absent("pricedetermining"),
            Present("Each price-determining factor is reviewed every year by the board."),
        ],
    )


# --- kind 7: a crowded page ----------------------------------------------------------------


@generated
def table_beside_scatter_plot() -> Document:
    """A ruled table and its caption beside a scatter plot of 1,200 vector markers."""
    rows = reading.TABLE_ROWS
    return Document(
        "issue15-table-beside-1200-markers",
        reading.table_page(markers=1200),
        [
            TableCell("Site", 0, 0),
            TableCell("Depth", 0, 1),
            TableCell("Value", 0, 2),
            TableCell(rows[1][0], 1, 0),
            TableCell(rows[4][1], 4, 1),
            TableCell(rows[8][2], 8, 2),
            Present(reading.TABLE_CAPTION),
            Order("Measurements", reading.TABLE_CAPTION),
            Present("Figure 1: Value against depth."),
        ],
    )
