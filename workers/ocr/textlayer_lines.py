"""The text of one visual line as a reader reads it, for the text-layer engine. No Django here.

- Right-to-left lines come out in logical order. A PDF may store a line's glyphs in
  logical order or in visual order (drawn left to right, as many generators of Hebrew
  and Arabic do), and MuPDF's own reordering handles a pure right-to-left run but
  scrambles one mixed with numbers. So the characters are laid out by position (the
  visual order on the page) and turned into logical order with the Unicode bidi
  algorithm (python-bidi): for a single line the algorithm is its own inverse, so
  ``get_display`` of the visual string is the logical string. A stored order that is
  already logical (its bidi display matches the positions) is kept as it is.
- Vertical CJK lines (tategaki) are columns, read top to bottom; lines are joined
  without a space between two CJK characters (horizontal or vertical).
"""

import re
import unicodedata
from typing import Any

from bidi import get_display

# Fonts with a broken ToUnicode map yield control characters (TeX's big brackets come
# out as \x12, \x13; some files have NULs, which PostgreSQL text refuses). Each is a
# glyph on the page, so it becomes a space rather than gluing its neighbours together.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
LIGATURES = str.maketrans({"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"})
# Hebrew, Arabic, Syriac, Thaana, NKo, Samaritan, Mandaic and their presentation forms:
# a quick test before the exact one (unicodedata's bidi class R or AL).
RTL_RANGES = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
# Han, kana, CJK symbols and punctuation, full-width forms: written without spaces
# between words. (Hangul is written with spaces, so it is not here.)
CJK = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# A gap between two glyphs wider than this share of the line height (a space is about
# a fifth of it, letters touch) is a word space the PDF did not draw as a character.
WORD_GAP_SHARE = 0.1
# Below this share of glyphs with a position of their own (not stacked on another
# glyph, as some shapers place every glyph of a word at one point), positions say
# nothing about the order and the stored order is kept.
DISTINCT_POSITIONS_SHARE = 0.8

Glyph = tuple[str, float, float]  # character, x0, x1 in PDF points


def span_text(span: dict[str, Any]) -> str:
    return CONTROL_CHARACTERS.sub(" ", span["text"])


def has_rtl(text: str) -> bool:
    return bool(RTL_RANGES.search(text)) and any(unicodedata.bidirectional(char) in ("R", "AL") for char in text)


def is_cjk(char: str) -> bool:
    return bool(CJK.match(char))


def separator(before: str, after: str) -> str:
    """What goes between two pieces of text joined across a line break: nothing between
    two CJK characters, a space otherwise."""
    return "" if before and after and is_cjk(before[-1]) and is_cjk(after[0]) else " "


def is_tategaki(lines: list[dict[str, Any]]) -> bool:
    """A block of vertical CJK writing: every line (``text`` set) runs downwards on the
    displayed page, and most of the block's letters are CJK (upright digits may be among them)."""
    letters = [char for line in lines for char in line["text"] if not char.isspace()]
    downwards = all(line["dir"][1] > abs(line["dir"][0]) for line in lines)
    return downwards and bool(letters) and sum(map(is_cjk, letters)) >= len(letters) * 0.5


# --- right to left ------------------------------------------------------------------------


def logical_text(glyphs: list[Glyph], stored: str, line_height: float) -> str:
    """A right-to-left row in logical order. ``glyphs`` are the row's characters in the
    order the PDF stores them, ``stored`` their text as extracted."""
    base = base_direction(stored)
    visual_glyphs = [glyph for glyph in glyphs if not glyph[0].isspace()]
    if len(visual_glyphs) < 2 or not positions_tell_order(visual_glyphs):
        return stored
    visual = visual_string(visual_glyphs, line_height * WORD_GAP_SHARE)
    if squeeze(get_display(stored, base_dir=base)) == squeeze(visual):
        return stored  # stored in logical order already
    return " ".join(get_display(visual, base_dir=base).split())


def base_direction(text: str) -> str:
    """The paragraph direction of a line: right to left when most strong letters are."""
    classes = [unicodedata.bidirectional(char) for char in text]
    rtl = sum(1 for kind in classes if kind in ("R", "AL"))
    return "R" if rtl >= sum(1 for kind in classes if kind == "L") else "L"


def positions_tell_order(glyphs: list[Glyph]) -> bool:
    bases = [glyph for glyph in glyphs if not unicodedata.category(glyph[0]).startswith("M")]
    centres = {round((x0 + x1) / 2, 1) for _char, x0, x1 in bases}
    return len(centres) >= len(bases) * DISTINCT_POSITIONS_SHARE


def visual_string(glyphs: list[Glyph], word_gap: float) -> str:
    """The glyphs left to right as drawn, a combining mark kept after the glyph it was
    stored after, with a space where the PDF left a gap instead of drawing one."""
    clusters: list[list[Glyph]] = []
    for glyph in glyphs:
        if clusters and unicodedata.category(glyph[0]).startswith("M"):
            clusters[-1].append(glyph)
        else:
            clusters.append([glyph])
    clusters.sort(key=lambda cluster: (cluster[0][1] + cluster[0][2]) / 2)
    text, right = "", None
    for cluster in clusters:
        left = cluster[0][1]
        if right is not None and left - right > word_gap:
            text += " "
        text += "".join(char for char, _x0, _x1 in cluster)
        right = max(x1 for _char, _x0, x1 in cluster)
    return text


def squeeze(text: str) -> str:
    return "".join(text.split())
