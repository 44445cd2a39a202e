"""Generated PDFs of the kinds of issue 15, as plain functions returning PDF bytes.

Shared by the tests (tests/test_text_trust.py, tests/test_orientation.py, ...) and the
fidelity benchmark, so both read the same inputs. Everything is drawn with PyMuPDF and
raw PDF object edits; no file from outside this repository is used. No Django here.
"""

import random
import re

import numpy as np
import pymupdf

MAINTENANCE_TITLE = "Maintenance Report 2024"
MAINTENANCE_SENTENCES = (
    "The pumps at the northern station were inspected in March.",
    "Two valves were replaced and the pressure tests passed.",
)
TYPE3_LINES = (
    "Quarterly shipping summary",
    "Orders were packed within two days.",
    "Freight costs fell by nine percent.",
    "Customers rated the service highly.",
)
SCAN_LINES = (
    "Harbour inspection notes",
    "The western pier needs new railings.",
    "Cranes were serviced before winter.",
    "Lighting on the quay works again.",
)
HONEST_TEXTS = {
    "greek": "Η αναφορά συντήρησης περιγράφει τις αντλίες του βόρειου σταθμού. "
    "Δύο βαλβίδες αντικαταστάθηκαν και οι δοκιμές πίεσης πέτυχαν.",
    "cyrillic": "Отчёт о техническом обслуживании описывает насосы северной станции. "
    "Два клапана были заменены, и испытания давлением прошли успешно.",
    "arabic": "يصف تقرير الصيانة المضخات في المحطة الشمالية. تم استبدال صمامين ونجحت اختبارات الضغط.",
    "cjk": "维护报告描述了北站的水泵。两个阀门已更换，压力测试已通过。所有设备运行正常，没有发现其他问题。",
}
PAGE = (595, 842)  # A4 in points


def _text_page(lines, *, size=PAGE, fontsize=14, top=72, leading=1.6) -> pymupdf.Document:
    document = pymupdf.open()
    page = document.new_page(width=size[0], height=size[1])
    for number, line in enumerate(lines):
        page.insert_text((72, top + number * fontsize * leading), line, fontsize=fontsize * (1.4 if number == 0 else 1))
    return document


def _cmap(pairs: dict[int, str]) -> bytes:
    """A ToUnicode CMap sending each one-byte code to its string."""
    items = sorted(pairs.items())
    chunks = []
    for start in range(0, len(items), 100):  # at most 100 entries per bfchar block (PDF 32000-1, 9.10.3)
        block = items[start : start + 100]
        body = "\n".join(f"<{code:02X}> <{''.join(f'{ord(c):04X}' for c in text)}>" for code, text in block)
        chunks.append(f"{len(block)} beginbfchar\n{body}\nendbfchar")
    return (
        "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
        "1 begincodespacerange <00> <FF> endcodespacerange\n"
        + "\n".join(chunks)
        + "\nendcmap CMapName currentdict /CMap defineresource pop end end\n"
    ).encode()


def _with_tounicode(document: pymupdf.Document, mapping) -> bytes:
    """The document with every font of its first page given ``mapping(code) -> str`` as ToUnicode."""
    page = document[0]
    for font in page.get_fonts():
        stream = document.get_new_xref()
        document.update_object(stream, "<<>>")
        document.update_stream(stream, _cmap({code: mapping(code) for code in range(32, 256)}))
        document.xref_set_key(font[0], "ToUnicode", f"{stream} 0 R")
    return document.tobytes()


def shifted_tounicode(shift: int = 29, lines=(MAINTENANCE_TITLE, *MAINTENANCE_SENTENCES)) -> bytes:
    """Helvetica text whose ToUnicode map sends every code to code - ``shift``:
    "Maintenance" extracts as "0DLQWHQDQFH" with 29."""
    return _with_tounicode(_text_page(lines), lambda code: chr(max(code - shift, 1)))


def scrambled_tounicode(seed: int = 7, lines=(MAINTENANCE_TITLE, *MAINTENANCE_SENTENCES)) -> bytes:
    """Helvetica text whose ToUnicode map permutes the letters (case kept): a font
    subset whose map was written for another subset."""
    shuffle = random.Random(seed)
    lower = list("abcdefghijklmnopqrstuvwxyz")
    target = lower[:]
    while any(a == b for a, b in zip(lower, target, strict=True)):
        shuffle.shuffle(target)
    table = dict(zip(lower, target, strict=True)) | {a.upper(): b.upper() for a, b in zip(lower, target, strict=True)}
    return _with_tounicode(_text_page(lines), lambda code: table.get(chr(code), chr(code)))


def unmapped_tounicode(replacement: str = "\ufffd", lines=(MAINTENANCE_TITLE, *MAINTENANCE_SENTENCES)) -> bytes:
    """Helvetica text whose ToUnicode map sends every letter and digit to ``replacement``
    (U+FFFD, or a control character when given one; ``None`` sends each to a control
    character of its own)."""

    def mapping(code: int) -> str:
        if not chr(code).isalnum():
            return chr(code)
        return replacement if replacement is not None else chr(1 + code % 30)

    return _with_tounicode(_text_page(lines), mapping)


# --- Type 3 ------------------------------------------------------------------------------

SVG_TOKEN = re.compile(r"[MLHVCQZmlhvcqz]|-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _glyph_outlines(text: str, fontname: str = "helv") -> dict[str, str]:
    """PDF path operators (glyph space, 1000 units per em, y up) of each character,
    taken from MuPDF's outlines of a real font (its SVG output, text as paths)."""
    document = pymupdf.open()
    page = document.new_page(width=2000, height=100)
    characters = sorted(set(text) - {" "})
    page.insert_text((10, 50), "".join(characters), fontsize=10, fontname=fontname)
    svg = page.get_svg_image(text_as_path=True)
    paths = dict(re.findall(r'<path id="([^"]+)" d="([^"]*)"', svg))
    uses = re.findall(r'<use data-text="([^"]*)" xlink:href="#([^"]+)"', svg)
    return {character: _svg_to_pdf(paths[ref]) for character, ref in uses if ref in paths}


def _svg_to_pdf(d: str) -> str:
    """An SVG path (absolute M, L, H, V, C, Q, Z as MuPDF writes them) as PDF operators."""
    ops, command, numbers, x, y = [], "M", [], 0.0, 0.0
    tokens = SVG_TOKEN.findall(d) + ["M"]
    for token in tokens:
        if token.isalpha():
            if numbers or command in "Zz":
                ops_, x, y = _emit(command, numbers, x, y)
                ops += ops_
            command, numbers = token, []
        else:
            numbers.append(float(token) * 1000)
    return " ".join(ops) + " f"


def _emit(command: str, numbers: list[float], x: float, y: float) -> tuple[list[str], float, float]:
    ops = []
    if command in "Zz":
        return ["h"], x, y
    arity = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "Q": 4}[command.upper()]
    for index in range(0, len(numbers), arity):
        args = numbers[index : index + arity]
        if command == "M" and index == 0:
            x, y = args
            ops.append(f"{x:.1f} {y:.1f} m")
        elif command in "ML":
            x, y = args
            ops.append(f"{x:.1f} {y:.1f} l")
        elif command == "H":
            x = args[0]
            ops.append(f"{x:.1f} {y:.1f} l")
        elif command == "V":
            y = args[0]
            ops.append(f"{x:.1f} {y:.1f} l")
        elif command == "C":
            ops.append(" ".join(f"{value:.1f}" for value in args) + " c")
            x, y = args[4:]
        elif command == "Q":  # quadratic to cubic
            qx, qy, ex, ey = args
            c1 = (x + 2 / 3 * (qx - x), y + 2 / 3 * (qy - y))
            c2 = (ex + 2 / 3 * (qx - ex), ey + 2 / 3 * (qy - ey))
            ops.append(f"{c1[0]:.1f} {c1[1]:.1f} {c2[0]:.1f} {c2[1]:.1f} {ex:.1f} {ey:.1f} c")
            x, y = ex, ey
    return ops, x, y


def type3_font_text(lines=TYPE3_LINES, fontsize: float = 16) -> bytes:
    """A page in a Type 3 font drawn from Helvetica's outlines, codes 1..N in order of
    first use, glyph names /g1../gN, and no ToUnicode map: the text layer says nothing
    of what the page shows."""
    characters = list(dict.fromkeys("".join(lines)))
    codes = {character: index + 1 for index, character in enumerate(characters)}
    outlines = _glyph_outlines("".join(characters))
    helv = pymupdf.Font("helv")
    widths = [round(helv.glyph_advance(ord(character)) * 1000) for character in characters]
    document = pymupdf.open()
    page = document.new_page(width=PAGE[0], height=PAGE[1])
    procs = {}
    for character, width in zip(characters, widths, strict=True):
        xref = document.get_new_xref()
        document.update_object(xref, "<<>>")
        document.update_stream(xref, f"{width} 0 d0 {outlines.get(character, '')}".encode())
        procs[character] = xref
    font = document.get_new_xref()
    names = " ".join(f"/g{codes[character]}" for character in characters)
    char_procs = " ".join(f"/g{codes[character]} {procs[character]} 0 R" for character in characters)
    document.update_object(
        font,
        (
            f"<< /Type /Font /Subtype /Type3 /FontBBox [0 -250 1000 1000] /FontMatrix [0.001 0 0 0.001 0 0] "
            f"/CharProcs << {char_procs} >> /Encoding << /Type /Encoding /Differences [1 {names}] >> "
            f"/FirstChar 1 /LastChar {len(characters)} /Widths [{' '.join(map(str, widths))}] /Resources << >> >>"
        ),
    )
    content = ["BT"]
    for number, line in enumerate(lines):
        size = fontsize * (1.4 if number == 0 else 1)
        y = PAGE[1] - 90 - number * fontsize * 1.8
        hexcodes = "".join(f"{codes[character]:02X}" for character in line)
        content.append(f"/T3 {size} Tf 1 0 0 1 72 {y} Tm <{hexcodes}> Tj")
    content.append("ET")
    stream = document.get_new_xref()
    document.update_object(stream, "<<>>")
    document.update_stream(stream, "\n".join(content).encode())
    document.xref_set_key(page.xref, "Resources", f"<< /Font << /T3 {font} 0 R >> >>")
    document.xref_set_key(page.xref, "Contents", f"{stream} 0 R")
    return document.tobytes()


# --- scans -------------------------------------------------------------------------------


def _picture_of(lines, *, size=(420, 300), dpi=150, fontsize=18) -> pymupdf.Pixmap:
    document = pymupdf.open()
    page = document.new_page(width=size[0], height=size[1])
    for number, line in enumerate(lines):
        page.insert_text((30, 50 + number * fontsize * 2), line, fontsize=fontsize)
    return page.get_pixmap(dpi=dpi)


def turned_scan(angle: int = 0, lines=SCAN_LINES) -> bytes:
    """A scanned page (one image, no text layer, no /Rotate) whose content is turned
    ``angle`` degrees clockwise (0, 90, 180, 270), as a sheet fed sideways."""
    picture = _picture_of(lines)
    pixels = np.frombuffer(picture.samples, dtype=np.uint8).reshape(picture.height, picture.width, picture.n)
    turned = np.ascontiguousarray(np.rot90(pixels, k=-(angle // 90) % 4))
    height, width = turned.shape[:2]
    image = pymupdf.Pixmap(pymupdf.csRGB, width, height, turned.tobytes(), False)
    page_width, page_height = width * 72 / 150, height * 72 / 150
    document = pymupdf.open()
    document.new_page(width=page_width, height=page_height).insert_image(
        pymupdf.Rect(0, 0, page_width, page_height), pixmap=image
    )
    return document.tobytes()


def invisible_ocr_layer(shown=SCAN_LINES, hidden=None) -> bytes:
    """A page image of ``shown`` with an invisible text layer (render mode 3) over it,
    as an earlier OCR pass leaves one; ``hidden`` is what that pass read (default: a
    poor reading, wrong letters in most words)."""
    if hidden is None:
        hidden = (
            "Hcrbonr insqcction uotes",
            "Tbe wcstcru qicr ueeds uew rcilings.",
            "Crauos wcre scrviccd bcforc wiutcr.",
            "Liqhtiug ou tbe qnay worbs aqain.",
        )
    picture = _picture_of(shown)
    document = pymupdf.open()
    page = document.new_page(width=420, height=300)
    page.insert_image(pymupdf.Rect(0, 0, 420, 300), pixmap=picture)
    for number, line in enumerate(hidden):
        page.insert_text((30, 50 + number * 36), line, fontsize=18, render_mode=3)
    return document.tobytes()


def honest_text(script: str = "greek") -> bytes:
    """An honest text layer in a non-Latin script (greek, cyrillic, arabic, cjk), set by
    MuPDF's HTML layout with its own fonts."""
    document = pymupdf.open()
    page = document.new_page(width=PAGE[0], height=PAGE[1])
    direction = ' dir="rtl"' if script == "arabic" else ""
    page.insert_htmlbox(
        pymupdf.Rect(72, 72, PAGE[0] - 72, 400), f"<p{direction} style='font-size:16px'>{HONEST_TEXTS[script]}</p>"
    )
    return document.tobytes()


def blank_page() -> bytes:
    """A page with nothing drawn on it."""
    document = pymupdf.open()
    document.new_page(width=PAGE[0], height=PAGE[1])
    return document.tobytes()


def ink_without_text() -> bytes:
    """A page of strokes and blots with no text anywhere (a signature-like scribble and
    a stamp), drawn as vector paths: ink, but nothing any engine can read."""
    document = pymupdf.open()
    page = document.new_page(width=PAGE[0], height=PAGE[1])
    shape = page.new_shape()
    rng = random.Random(3)
    for _ in range(40):
        start = pymupdf.Point(rng.uniform(100, 480), rng.uniform(150, 650))
        shape.draw_bezier(
            start,
            start + (rng.uniform(-60, 60), rng.uniform(-60, 60)),
            start + (rng.uniform(-60, 60), rng.uniform(-60, 60)),
            start + (rng.uniform(-90, 90), rng.uniform(-90, 90)),
        )
    shape.finish(width=3, color=(0.1, 0.1, 0.3))
    shape.draw_circle((300, 300), 60)
    shape.finish(width=6, color=(0.6, 0.1, 0.1), fill=(0.9, 0.7, 0.7))
    shape.commit()
    return document.tobytes()


DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def cid_font_text(tounicode: str = "none", lines=(MAINTENANCE_TITLE, *MAINTENANCE_SENTENCES), fontfile=DEJAVU) -> bytes:
    """Text in an embedded TrueType font (Type0, Identity-H) whose ToUnicode map is
    missing (``none``: extraction yields glyph ids, shifted letters and control
    characters) or sends every glyph to U+FFFD (``fffd``) or to the private use area
    (``pua``), as subset fonts from some producers do."""
    document = _text_page(lines, fontsize=14)
    page = document[0]
    page.clean_contents()
    fresh = pymupdf.open()
    target = fresh.new_page(width=PAGE[0], height=PAGE[1])
    target.insert_font(fontname="F0", fontfile=fontfile)
    for number, line in enumerate(lines):
        size = 14 * (1.4 if number == 0 else 1)
        target.insert_text((72, 72 + number * 14 * 1.6), line, fontname="F0", fontsize=size)
    font_xref = next(font[0] for font in target.get_fonts() if font[2] == "Type0")
    glyphs = pymupdf.Font(fontfile=fontfile)
    gids = sorted({glyphs.has_glyph(ord(character)) for character in "".join(lines)})
    if tounicode == "none":
        fresh.xref_set_key(font_xref, "ToUnicode", "null")
    else:

        def target_of(gid: int) -> str:
            return "FFFD" if tounicode == "fffd" else f"{0xE000 + gid:04X}"

        body = "\n".join(f"<{gid:04X}> <{target_of(gid)}>" for gid in gids)
        cmap = (
            "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
            "1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
            f"{len(gids)} beginbfchar\n{body}\nendbfchar\n"
            "endcmap CMapName currentdict /CMap defineresource pop end end\n"
        )
        stream = fresh.get_new_xref()
        fresh.update_object(stream, "<<>>")
        fresh.update_stream(stream, cmap.encode())
        fresh.xref_set_key(font_xref, "ToUnicode", f"{stream} 0 R")
    return fresh.tobytes()
