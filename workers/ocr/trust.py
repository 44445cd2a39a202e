"""Whether a page's text layer says what the page shows, and whether a page shows ink.
No Django here.

A text layer is only as good as its fonts' Unicode maps: a shifted or scrambled
ToUnicode map, a Type 3 font whose codes are 1..N, an embedded font with no map at all
(glyph ids come out: "0DLQWHQDQFH") or an invisible layer (render mode 3) that an
earlier, poor OCR pass left over a page image all extract as text that is not the
page's. The checks are dictionary-free, so they hold for any language: characters no
text contains (U+FFFD, control and private-use characters), letters of few scripts, and
for Latin script the shape of words (case pattern, a vowel, no long consonant runs, no
digits inside letters).
"""

import dataclasses
import itertools
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymupdf
from numpy.typing import NDArray

from workers.ocr.base import PageOcr
from workers.pdf import PYMUPDF_LOCK, PdfPage

# Fewer characters than this is no text layer worth trusting (a stray page number).
MIN_TEXT_CHARS = 16
# A page mostly covered by images with little text is a scan with at best a caption:
# reading the image gives the full text.
SCAN_IMAGE_SHARE = 0.5
SCAN_MAX_TEXT_CHARS = 200
# Characters no honest text layer is made of. A few private-use bullets (Symbol,
# Wingdings) are normal; a quarter of the page is a font without a Unicode map.
MAX_UNMAPPED_SHARE = 0.25
# Letters and digits are most of any prose, table or form; a formula page has symbols,
# but not three in five characters.
MIN_ALNUM_SHARE = 0.4
# Honest pages are written in one or two scripts (a Greek formula in English prose, a
# bilingual form); a broken map scatters letters over many.
MIN_TWO_SCRIPTS_SHARE = 0.8
# Latin-script word shapes (words of three letters or more). On the 142 pages of the
# sample corpus with five words or more (English and German prose, mathematics), 78-100%
# of the words pass and vowels and consonants alternate at 61-82% of neighbouring
# letters; through a shifted map 35-67% of words pass, with 27-44% alternation; through
# 40 random letter permutations 21-95% of the words pass, with 9-61% alternation: 28 of
# them are rejected, 10 checked against OCR, 2 pass. Between REJECT and TRUST the
# layer is checked against OCR of the page.
WORD_SHAPE_REJECT = 0.5
WORD_SHAPE_TRUST = 0.75
ALTERNATION_REJECT = 0.45
ALTERNATION_TRUST = 0.58
MIN_WORDS = 5
# Six consonants in a row are rare in European languages (English "strengths" has five,
# German "Angstschweiß" eight), common in scrambled text.
CONSONANT_RUN = 6
VOWELS = frozenset("aeiouyAEIOUY")
# Ink: a pixel darker or lighter than the page's background by this much (of 255), at
# a low resolution. A page with less than INK_MIN_SHARE of such pixels is blank (a
# scanner's specks, a page number alone at most).
INK_DPI = 36
INK_CONTRAST = 48
INK_MIN_SHARE = 0.0005
WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


@dataclass(frozen=True)
class Verdict:
    """What to make of a page's text layer: ``trust`` it, ``verify`` it against OCR of
    the page (plausible text, but it may not be what the page shows), or neither (OCR
    the page); ``reason`` says why in words for the user."""

    trust: bool
    verify: bool
    reason: str


def judge_page(page: pymupdf.Page) -> Verdict:
    """The verdict on a page's text layer (MuPDF's plain text, ligatures expanded)."""
    with PYMUPDF_LOCK:
        text = page.get_text("text", flags=pymupdf.TEXTFLAGS_TEXT & ~pymupdf.TEXT_PRESERVE_LIGATURES)
        image_share = image_coverage(page)
        # The text trace costs as much as the text: only a page image can hide text under it.
        invisible = invisible_share(page) if image_share > SCAN_IMAGE_SHARE else 0.0
    characters = len("".join(text.split()))
    if characters < MIN_TEXT_CHARS:
        return Verdict(False, False, f"no text layer ({characters} characters)")
    if invisible > 0.5 and image_share > SCAN_IMAGE_SHARE:
        verdict = judge_text(text)
        if not (verdict.trust or verdict.verify):
            return verdict
        share = round(invisible * 100)
        return Verdict(False, True, f"{share}% of the text is invisible (render mode 3) over a page image")
    if image_share > SCAN_IMAGE_SHARE and characters < SCAN_MAX_TEXT_CHARS:
        return Verdict(False, False, f"a page image with only {characters} characters of text")
    return judge_text(text)


def judge_text(text: str) -> Verdict:
    """The verdict on extracted text alone: is it language?"""
    characters = [character for character in text if not character.isspace()]
    total = len(characters) or 1
    unmapped = sum(1 for character in characters if is_unmapped(character))
    if unmapped / total > MAX_UNMAPPED_SHARE:
        return Verdict(
            False,
            False,
            f"{percent(unmapped, total)} of characters unmapped (U+FFFD, control or private-use characters)",
        )
    letters = [character for character in characters if character.isalpha()]
    alnum = len(letters) + sum(1 for character in characters if character.isdigit())
    if alnum / total < MIN_ALNUM_SHARE:
        return Verdict(False, False, f"only {percent(alnum, total)} of characters are letters or digits")
    scripts = script_counts(letters)
    top_two = sum(sorted(scripts.values(), reverse=True)[:2])
    if letters and top_two / len(letters) < MIN_TWO_SCRIPTS_SHARE:
        return Verdict(False, False, f"letters scattered over {len(scripts)} scripts")
    main = max(scripts, key=lambda script: scripts[script]) if scripts else ""
    if main == "LATIN":
        return judge_latin_words(text)
    return Verdict(True, False, f"{total} characters, {main.lower() or 'no'} script")


def judge_latin_words(text: str) -> Verdict:
    # Parts of compounds ("Weingarten-Abbildung") are words; one- and two-letter
    # tokens are often symbols of a formula ("xn", "Zd") and say nothing.
    words = [
        part
        for word in WORD.findall(text)
        for part in re.split(r"['’-]", word)
        if sum(character.isalpha() for character in part) >= 3
    ]
    if len(words) < MIN_WORDS:
        return Verdict(True, False, f"{len(words)} words")
    shaped = sum(1 for word in words if word_shaped(word)) / len(words)
    alternation = vowel_alternation(words)
    summary = (
        f"{round(shaped * 100)}% of {len(words)} words look like words, "
        f"vowels and consonants alternate at {round(alternation * 100)}% of letters"
    )
    if shaped < WORD_SHAPE_REJECT or alternation < ALTERNATION_REJECT:
        return Verdict(False, False, summary)
    if shaped < WORD_SHAPE_TRUST or alternation < ALTERNATION_TRUST:
        return Verdict(False, True, summary)
    return Verdict(True, False, summary)


def vowel_alternation(words: list[str]) -> float:
    """Share of neighbouring letters within words where a vowel meets a consonant."""
    changes = pairs = 0
    for word in words:
        kinds = [base_letter(character) in VOWELS for character in word if character.isalpha()]
        pairs += len(kinds) - 1
        changes += sum(1 for left, right in itertools.pairwise(kinds) if left != right)
    return changes / pairs if pairs else 1.0


def word_shaped(word: str) -> bool:
    """A Latin-script word: letters only, with a vowel and no long consonant run, and
    not in a case pattern no language writes. A number, or
    letters and digits mixed like "A4", "H2O", "COVID-19", passes when it is short."""
    letters = "".join(character for character in word if character.isalpha())
    if any(character.isdigit() for character in word):
        return len(letters) <= 3 and not word[0].isdigit() or len(letters) <= 2
    # "Word", "WORD", "word", and "PDFAnnotator", "iPhone", "McDonald"; not "aBcDe".
    if sum(1 for left, right in itertools.pairwise(letters) if left.islower() and right.isupper()) > 1:
        return False
    bases = [base_letter(character) for character in letters]
    if not any(base in VOWELS for base in bases):
        return False
    run = longest = 0
    for base in bases:
        run = 0 if base in VOWELS else run + 1
        longest = max(longest, run)
    return longest < CONSONANT_RUN


def base_letter(character: str) -> str:
    return unicodedata.normalize("NFD", character)[0]


def is_unmapped(character: str) -> bool:
    category = unicodedata.category(character)
    return character == "\ufffd" or category in ("Cc", "Co", "Cn", "Cs")


def script_counts(letters: list[str]) -> dict[str, int]:
    """Letters per script, by the first word of their Unicode name (CJK ideographs,
    kana and Hangul count as one script: Japanese and Korean pages mix them)."""
    counts: dict[str, int] = {}
    for letter in letters:
        name = unicodedata.name(letter, "UNKNOWN").split()[0]
        if name in ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "HALFWIDTH", "FULLWIDTH"):
            name = "CJK"
        counts[name] = counts.get(name, 0) + 1
    return counts


def percent(part: int, whole: int) -> str:
    return f"{round(part * 100 / (whole or 1))}%"


def invisible_share(page: pymupdf.Page) -> float:
    """Share of the page's characters drawn invisibly (render mode 3; MuPDF's text
    trace reports them as type 3)."""
    spans = page.get_texttrace()
    total = sum(len(span["chars"]) for span in spans)
    hidden = sum(len(span["chars"]) for span in spans if span["type"] == 3 or span.get("opacity", 1) == 0)
    return hidden / total if total else 0.0


def image_coverage(page: pymupdf.Page) -> float:
    page_area = abs(page.rect) or 1
    return float(sum(abs(pymupdf.Rect(info["bbox"]) & page.rect) for info in page.get_image_info()) / page_area)


def ink_mask(page: PdfPage, *, outside: Sequence[tuple[int, int, int, int]] = ()) -> NDArray[np.bool_]:
    """Where the page shows ink, outside the given boxes (rendered pixels): pixels of a
    low-resolution grey rendering that differ from the background (the median grey
    around the boxes: a photograph is not the paper) by INK_CONTRAST or more."""
    with PYMUPDF_LOCK:
        pixmap = page.page.get_pixmap(dpi=INK_DPI, colorspace=pymupdf.csGRAY, alpha=False)
        grey = np.frombuffer(pixmap.samples, dtype=np.uint8).reshape(pixmap.height, pixmap.width, pixmap.n)[..., 0]
    around = np.ones(grey.shape, dtype=bool)
    scale = INK_DPI / 72 / page.zoom  # rendered pixels -> these pixels
    for x1, y1, x2, y2 in outside:  # a pixel of margin: the boxes' edges are anti-aliased
        around[
            max(0, math.floor(y1 * scale) - 1) : math.ceil(y2 * scale) + 1,
            max(0, math.floor(x1 * scale) - 1) : math.ceil(x2 * scale) + 1,
        ] = False
    if not around.any():
        return around
    background = float(np.median(grey[around]))
    ink: NDArray[np.bool_] = (np.abs(grey.astype(np.int16) - background) >= INK_CONTRAST) & around
    return ink


def ink_share(page: PdfPage) -> float:
    """Share of the page that is ink (see ink_mask)."""
    return float(np.mean(ink_mask(page)))


def explain_empty(page: PdfPage, result: PageOcr) -> PageOcr:
    """A result without text, explained; a result with text is returned as it is.

    A blank page is fine empty (its reason says so), and so is a picture without text
    kept as a Picture cell (a photograph). A page with ink outside its pictures and no
    text (glyphs no engine could read, a scribble) gets an ``error``: it is recorded as
    failed and its job says so, whatever the engine.
    """
    if result.error or any(cell.text.strip() for cell in result.cells if cell.category != "Picture"):
        return result
    reason = result.reason or f"{result.engine} used"
    if ink_share(page) < INK_MIN_SHARE:
        return dataclasses.replace(result, reason=f"{reason}; blank page (no ink)")
    mask = ink_mask(page, outside=[cell.bbox for cell in result.cells])
    if result.cells and mask.mean() < INK_MIN_SHARE:
        return dataclasses.replace(result, reason=f"{reason}; a picture without text, kept as a picture")
    share = float(mask.mean())
    error = (
        f"Page {page.number + 1} shows ink ({share:.1%} of the page, outside its pictures) "
        f"but no text could be read from it: {reason}."
    )
    return dataclasses.replace(result, reason=f"{reason}; no text on a page with ink", error=error)
