"""`auto` trusts a text layer only when it is language (issue 15, kind 1): broken or
shifted ToUnicode maps, Type 3 fonts without Unicode, unmapped characters and invisible
layers left by a poor OCR pass are read with OCR instead, and the page says why."""

import pymupdf
import pytest

from bench import trust_samples as documents
from workers.ocr.auto import AutoEngine
from workers.ocr.trust import judge_page, judge_text
from workers.pdf import PdfPage

PROMPT = "prompt_layout_all_en"


def read(data: bytes):
    document = pymupdf.open("pdf", data)
    return AutoEngine().recognize(PdfPage(page=document[0], dpi=200), prompt_mode=PROMPT)


def markdown_words(result) -> str:
    return " ".join(" ".join(cell.text for cell in result.cells).split())


def test_shifted_tounicode_page_is_read_with_ocr_and_says_why():
    data = documents.shifted_tounicode()
    assert "0DLQWHQDQFH 5HSRUW" in pymupdf.open("pdf", data)[0].get_text()  # the sample of the issue
    result = read(data)
    assert result.engine == "rapidocr"
    assert result.reason.startswith("textlayer rejected: ") and "rapidocr read" in result.reason
    text = markdown_words(result)
    assert documents.MAINTENANCE_TITLE in text
    assert "pumps at the northern station" in text and "pressure tests passed" in text


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(documents.shifted_tounicode(3), id="shift-3"),
        pytest.param(documents.scrambled_tounicode(7), id="scrambled-letters"),
        pytest.param(documents.cid_font_text("none"), id="cid-font-without-tounicode"),
        pytest.param(documents.cid_font_text("pua"), id="cid-font-mapped-to-private-use"),
    ],
)
def test_other_wrong_unicode_maps_are_read_with_ocr(data):
    result = read(data)
    assert result.engine == "rapidocr", result.reason
    assert result.reason.startswith("textlayer rejected: ")
    text = markdown_words(result)
    assert "Maintenance Report" in text and "valves were replaced" in text


def test_type3_font_without_unicode_is_read_with_ocr():
    data = documents.type3_font_text()
    assert not pymupdf.open("pdf", data)[0].get_text().strip().isalpha()
    result = read(data)
    assert result.engine == "rapidocr"
    assert "letters or digits" in result.reason
    text = markdown_words(result)
    for line in documents.TYPE3_LINES:
        assert line.rstrip(".") in text


def test_a_poor_invisible_ocr_layer_over_a_page_image_is_replaced():
    result = read(documents.invisible_ocr_layer())
    assert result.engine == "rapidocr"
    text = markdown_words(result)
    assert "Harbour inspection notes" in text and "Cranes were serviced" in text
    assert "Hcrbonr" not in text


LONG_LINES = (
    "Harbour inspection notes for the year",
    "The western pier needs new railings.",
    "Cranes were serviced before winter.",
    "Lighting on the quay works again now.",
    "Two bollards on the east side are loose.",
    "Paint on the ferry ramp is peeling off.",
)
# A layer of plausible words that are not the page's (the OCR of another page, or of
# an earlier version of this one): only OCR of the page can tell.
WRONG_READING = (
    "Minutes of the annual general meeting",
    "The treasurer presented the accounts.",
    "Members approved the budget for spring.",
    "The chair thanked the outgoing board.",
    "Next year the meeting moves to April.",
    "Questions from the floor were answered.",
)


def test_a_long_invisible_layer_is_checked_against_ocr_and_replaced_when_it_disagrees():
    data = documents.invisible_ocr_layer(shown=LONG_LINES, hidden=WRONG_READING)
    verdict = judge_page(pymupdf.open("pdf", data)[0])
    assert verdict.verify and "invisible (render mode 3) over a page image" in verdict.reason
    result = read(data)
    assert result.engine == "rapidocr" and "of its words read by rapidocr" in result.reason
    assert "western pier needs new railings" in markdown_words(result)


def test_a_good_invisible_layer_agrees_with_ocr_and_is_kept():
    result = read(documents.invisible_ocr_layer(shown=LONG_LINES, hidden=LONG_LINES))
    assert result.engine == "textlayer"
    assert result.reason.startswith("textlayer trusted after checking it against OCR")
    assert "Paint on the ferry ramp is peeling off." in markdown_words(result)


@pytest.mark.parametrize("script", sorted(documents.HONEST_TEXTS))
def test_honest_non_latin_text_layers_are_trusted(script):
    result = read(documents.honest_text(script))
    assert result.engine == "textlayer", result.reason
    assert result.reason.startswith("textlayer trusted: ")


@pytest.mark.parametrize(
    "text",
    [
        "The pumps at the northern station were inspected in March. Two valves were replaced.",
        "Die Pumpen der Nordstation wurden im März geprüft. Zwei Ventile wurden ersetzt, Angstschweiß inklusive.",
        "Les pompes de la station nord ont été inspectées en mars. Deux vannes ont été remplacées.",
        "Las bombas de la estación norte fueron inspeccionadas en marzo. Se reemplazaron dos válvulas.",
        "Table 3: COVID-19 cases in 2021, A4 sheets, H2O levels and the x-axis labels of Fig. 2",
    ],
)
def test_honest_latin_prose_is_trusted(text):
    assert judge_text(text).trust


@pytest.mark.parametrize(
    "text,why",
    [
        ("\ufffd" * 40 + " Report", "unmapped"),
        ("\x01\x02\x03 \x04\x05\x06\x07 \x08\x0e\x0f\x10 \x11\x12\x13 Maintenance", "unmapped"),
        ("\ue030\ue044\ue04c\ue051 \ue057\ue048\ue051 \ue044\ue051\ue046 \ue048\ue003", "unmapped"),
        ('!"# $%&- ./0 0/12 &-\x02 33 !% 4!5#!-&6#!#&0 =>#5&6/"./1', "letters or digits"),
        ("Жq ω中 αbЯ 文 ﻳ שׁ ข ก ㄱ ᚠ ᛟ Ꭰ ꓐ ⴰ ⵣ", "scripts"),
    ],
)
def test_text_that_is_not_language_is_rejected(text, why):
    verdict = judge_text(text)
    assert not verdict.trust and not verdict.verify
    assert why in verdict.reason


def test_most_letter_permutations_are_not_trusted():
    """Of 40 random ToUnicode letter permutations, at most 2 pass as language (a map that
    sends vowels to vowels reads like one); the rest are rejected or checked with OCR."""
    verdicts = [judge_page(pymupdf.open("pdf", documents.scrambled_tounicode(seed))[0]) for seed in range(40)]
    assert sum(1 for verdict in verdicts if verdict.trust) <= 2
    assert sum(1 for verdict in verdicts if not verdict.trust and not verdict.verify) >= 25


def test_the_corpus_text_layers_are_all_trusted():
    """Every page of the sample corpus with a real text layer (200 characters or more)
    is trusted without an OCR check: judging costs those pages nothing but the judging."""
    from tests.test_corpus import CONVERTIBLE, text_chars

    judged = 0
    for path in CONVERTIBLE:
        with pymupdf.open(path) as document:
            for page in document:
                if text_chars(page) >= 200:
                    verdict = judge_page(page)
                    assert verdict.trust, f"{path.name} page {page.number + 1}: {verdict.reason}"
                    judged += 1
    assert judged >= 100
