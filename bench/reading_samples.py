"""Generated PDFs of the page kinds the text-layer engine must read (issue 15): plain
functions returning PDF bytes, shared by the tests and the benchmarks. No Django here.

Fonts come with PyMuPDF (Helvetica, MuPDF's built-in Noto fonts by script, and the
Droid Sans Fallback CJK font behind fontname="japan"), so nothing depends on the host.
"""

import random

import pymupdf
from bidi import get_display

LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore"
LETTER = (612, 792)  # PDF points: a portrait US Letter MediaBox, 2200 x 1700 px at 200 DPI when turned


def _bytes(document: pymupdf.Document) -> bytes:
    data = document.tobytes(garbage=3, deflate=True)
    document.close()
    return data


# --- kind 3: /Rotate ----------------------------------------------------------------------


def rotated_report(
    rotation: int = 90, labels=("Alpha", "Bravo", "Charlie"), title: str = "Quarterly Field Report", size=LETTER
) -> bytes:
    """A page with ``/Rotate rotation`` whose content is drawn turned the other way, so it
    reads upright on screen: a title and one paragraph per label, top to bottom as
    displayed. The paragraphs are written to the content stream in the order first,
    third, second (and the title last), so the stream order is not the reading order."""
    document = pymupdf.open()
    page = document.new_page(width=size[0], height=size[1])
    page.set_rotation(rotation)
    unturn = page.derotation_matrix  # displayed frame -> the unrotated page's frame
    width = page.rect.width
    order = list(range(len(labels)))
    order = order[:1] + order[1:][::-1]
    for index in order:
        top = 130 + index * 110
        box = pymupdf.Rect(72, top, width - 72, top + 100) * unturn
        text = f"{labels[index]} {LOREM} {LOREM} {labels[index].lower()}-end."
        page.insert_textbox(box, text, fontsize=11, rotate=rotation)
    page.insert_text(pymupdf.Point(72, 90) * unturn, title, fontsize=22, rotate=rotation)
    return _bytes(document)


def turned(data: bytes, rotation: int) -> bytes:
    """Every page of a PDF placed on a new page with ``/Rotate rotation``, its content
    turned back so that it displays exactly as the original (annotations and form
    fields are not carried over)."""
    source = pymupdf.open("pdf", data)
    document = pymupdf.open()
    for page in source:
        width, height = page.rect.width, page.rect.height
        if rotation in (90, 270):
            width, height = height, width
        target = document.new_page(width=width, height=height)
        target.show_pdf_page(target.rect, source, page.number, rotate=rotation)
        target.set_rotation(rotation)
    source.close()
    return _bytes(document)


# --- kind 4: writing direction --------------------------------------------------------------

HEBREW_LINES = (
    "דוח הפעילות השנתי של החברה",
    "השנה הושלמו כל שלבי הפרויקט בהצלחה",
    "במחסן נספרו 4471 פריטים תוך 12 ימים.",
    "הצוות מודה לכל השותפים על העבודה",
)
ARABIC_LINES = (
    "تقرير النشاط السنوي للشركة",
    "تم شحن 4471 قطعة خلال 12 يوما.",
)


def _builtin_font(script: int) -> pymupdf.Font:
    return pymupdf.Font(script=script)


def rtl_visual_order(lines=HEBREW_LINES, script: str = "hebrew", right: float = 540, fontsize: float = 14) -> bytes:
    """Right-aligned right-to-left lines stored in visual order: each line's display
    string (python-bidi's ``get_display`` of the logical text) drawn glyph by glyph from
    left to right, as many generators do. Digits and punctuation the script's font lacks
    are drawn in Helvetica."""
    font = _builtin_font(pymupdf.mupdf.UCDN_SCRIPT_HEBREW if script == "hebrew" else pymupdf.mupdf.UCDN_SCRIPT_ARABIC)
    latin = pymupdf.Font("helv")
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    page.insert_font(fontname="rtl", fontbuffer=font.buffer)
    y = 100
    for line in lines:
        visual = get_display(line)
        glyphs = [(char, "rtl" if font.has_glyph(ord(char)) else "helv") for char in visual]
        advances = [(font if name == "rtl" else latin).text_length(char, fontsize=fontsize) for char, name in glyphs]
        x = right - sum(advances)
        for (char, name), advance in zip(glyphs, advances, strict=True):
            if not char.isspace():
                page.insert_text((x, y), char, fontname=name, fontsize=fontsize)
            x += advance
        y += fontsize * 1.6
    return _bytes(document)


TATEGAKI_COLUMNS = ("縦書きの文章です", "右から左へ読みます", "三行目の列です")


def rtl_logical_order(lines=HEBREW_LINES, right: float = 540) -> bytes:
    """Right-aligned right-to-left lines stored in logical order: laid out by MuPDF's HTML
    engine (HarfBuzz shaping, bidi), which draws the glyphs in the order of the text."""
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    y = 72
    for line in lines:
        page.insert_htmlbox(pymupdf.Rect(72, y, right, y + 30), f'<p dir="rtl" style="text-align:right">{line}</p>')
        y += 36
    return _bytes(document)


def tategaki(
    columns=TATEGAKI_COLUMNS, fontsize: float = 20, top: float = 100, right: float = 500, writing: str = "vertical-cmap"
) -> bytes:
    """Japanese written vertically: one column per string, from the right, each top to
    bottom. ``writing="vertical-cmap"``: in a vertical writing mode (the CJK font's -V
    CMap: upright glyphs advance downwards); ``"rotated"``: each column a line of text
    turned a quarter clockwise, as some generators draw vertical text."""
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    x = right
    for column in columns:
        if writing == "rotated":
            page.insert_text((x, top), column, fontname="japan", fontsize=fontsize, rotate=270)
        else:
            page.insert_text((x, top), column, fontname="japan", fontsize=fontsize)
        x -= fontsize * 2
    for xref, *_rest in page.get_fonts(full=True):
        kind, encoding = document.xref_get_key(xref, "Encoding")
        if writing != "rotated" and kind == "name" and encoding.endswith("-H"):
            document.xref_set_key(xref, "Encoding", encoding[:-2] + "-V")
    return _bytes(document)


# --- kind 5: form fields ------------------------------------------------------------------

FORM_FIELDS = (("Organisation:", "Acme Widgets Ltd"), ("Contact name:", "Jane Doe"), ("City:", "Lyon"))


def filled_form(fields=FORM_FIELDS, rise: float = 1.0, field_x: float = 170) -> bytes:
    """Labels with a filled text field each on the same line, the field's box starting
    ``rise`` points above the label's line (as form designers place them)."""
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    page.insert_text((72, 90), "Registration", fontsize=18)
    y = 150
    for label, value in fields:
        page.insert_text((72, y), label, fontsize=11)
        widget = pymupdf.Widget()
        widget.field_type = pymupdf.PDF_WIDGET_TYPE_TEXT
        widget.field_name = label.rstrip(":")
        widget.rect = pymupdf.Rect(field_x, y - 11 - rise, field_x + 230, y + 4 - rise)
        widget.field_value = value
        widget.text_fontsize = 11
        page.add_widget(widget)
        y += 32
    return _bytes(document)


# --- kind 6: hyphens ----------------------------------------------------------------------


def hyphenated_text(keep: str = "price-determining", split: str = "information", fontsize: float = 11) -> bytes:
    """Two pages. Page 1 breaks ``split`` (a word hyphenated only by the line break) and
    ``keep`` (a compound with a real hyphen) at line ends; page 2 writes ``keep`` whole
    inside a line, which is the evidence that its hyphen is real."""
    keep_head, keep_tail = keep.split("-", 1)
    cut = len(split) // 2
    lines = (
        f"The committee asked for more {split[:cut]}-",
        f"{split[cut:]} about the market before it voted on the",
        f"{keep_head}-",
        f"{keep_tail} factors that shape the yearly budget.",
    )
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    y = 100
    for line in lines:
        page.insert_text((72, y), line, fontsize=fontsize)
        y += fontsize * 1.3
    second = document.new_page(width=595, height=842)
    second.insert_text((72, 100), f"Each {keep} factor is reviewed every year by the board.", fontsize=fontsize)
    return _bytes(document)


# --- kind 7: slow pages -------------------------------------------------------------------

TABLE_ROWS = [["Site", "Depth", "Value"]] + [
    [f"S{index}", f"{index * 3}", f"{index * 1.5:.1f}"] for index in range(1, 9)
]
TABLE_CAPTION = "Table 1: Depth and value per site."


def table_page(markers: int = 0, seed: int = 7, one_path: bool = False) -> bytes:
    """A ruled table with its caption, and beside it (``markers`` > 0) a scatter plot of
    that many vector markers, small filled squares, each a path of its own or
    (``one_path``) all in one path."""
    document = pymupdf.open()
    page = document.new_page(width=612, height=792)
    page.insert_text((72, 80), "Measurements", fontsize=18)
    columns, top, row_height = [72, 140, 210, 290], 120, 20
    for row, texts in enumerate(TABLE_ROWS):
        page.draw_line((columns[0], top + row * row_height), (columns[-1], top + row * row_height))
        for column, text in enumerate(texts):
            page.insert_text((columns[column] + 4, top + row * row_height + 14), text, fontsize=10)
    bottom = top + len(TABLE_ROWS) * row_height
    page.draw_line((columns[0], bottom), (columns[-1], bottom))
    for x in columns:
        page.draw_line((x, top), (x, bottom))
    page.insert_text((72, bottom + 18), TABLE_CAPTION, fontsize=10)
    if markers:
        rng = random.Random(seed)
        page.draw_rect((325, 115, 575, 365))
        shape = page.new_shape()
        for _ in range(markers):
            x, y = 330 + rng.random() * 240, 120 + rng.random() * 240
            shape.draw_rect((x - 2.5, y - 2.5, x + 2.5, y + 2.5))
            if not one_path:
                shape.finish(color=(0, 0, 0), fill=(0.8, 0.1, 0.1))
        if one_path:
            shape.finish(color=(0, 0, 0), fill=(0.8, 0.1, 0.1))
        shape.commit()
        page.insert_text((330, 385), "Figure 1: Value against depth.", fontsize=10)
    return _bytes(document)
