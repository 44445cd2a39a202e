"""`auto`: per page, the text layer when it says what the page shows, OCR when it does
not (no text layer, a scan, a broken Unicode map, an invisible layer left by a poor OCR
pass); with a dots.ocr server configured, dots.ocr for every page. Each page records
which path produced it and why. No Django here."""

import dataclasses
import re

from workers.ocr.base import PageOcr
from workers.ocr.dotsocr import DotsOcrEngine
from workers.ocr.rapidocr import RapidOcrEngine
from workers.ocr.textlayer import TextLayerEngine
from workers.ocr.trust import Verdict, judge_page
from workers.pdf import PdfPage

# An invisible layer agrees with OCR of the page when at least this share of its words
# (three letters or more) are among the words OCR reads there.
AGREEMENT = 0.5
WORDS = re.compile(r"[^\W\d_]{3,}")


class AutoEngine:
    name = "auto"

    def __init__(self) -> None:
        self.textlayer = TextLayerEngine()
        self.ocr = RapidOcrEngine()

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        verdict = judge_page(page.page)
        if verdict.trust:
            result = self.textlayer.recognize(page, prompt_mode=prompt_mode)
            return dataclasses.replace(result, reason=f"textlayer trusted: {verdict.reason}")
        read = self.ocr.recognize(page, prompt_mode=prompt_mode)
        if verdict.verify:
            layer = self.textlayer.recognize(page, prompt_mode=prompt_mode)
            agreement = word_agreement(text_of(layer), text_of(read))
            if agreement >= AGREEMENT:
                return dataclasses.replace(
                    layer,
                    reason=f"textlayer trusted after checking it against OCR "
                    f"({verdict.reason}; {round(agreement * 100)}% "
                    "of its words read by rapidocr too)",
                )
            verdict = Verdict(
                False, False, f"{verdict.reason}; only {round(agreement * 100)}% of its words read by rapidocr"
            )
        if read.cells:
            return dataclasses.replace(read, reason=f"{rejection(verdict)}; {read.reason}")
        return self.nothing_read(page, prompt_mode, verdict, read)

    def nothing_read(self, page: PdfPage, prompt_mode: str, verdict: Verdict, read: PageOcr) -> PageOcr:
        """No text anywhere: keep what the text layer sees besides text (pictures), and say so."""
        pictures = [
            cell for cell in self.textlayer.recognize(page, prompt_mode=prompt_mode).cells if cell.category == "Picture"
        ]
        return PageOcr(
            cells=pictures, engine="rapidocr-no-text", reason=f"{rejection(verdict)}; rapidocr found no text"
        )


def rejection(verdict: Verdict) -> str:
    """Why the text layer was not used, as the start of a page's reason."""
    return verdict.reason if verdict.reason.startswith("no text layer") else f"textlayer rejected: {verdict.reason}"


class AutoDotsOcr:
    """`auto` with a dots.ocr server configured: every page goes to dots.ocr, which
    reads the page image (text layers are not consulted), and says so."""

    name = "auto"

    def __init__(self, dotsocr: DotsOcrEngine) -> None:
        self.dotsocr = dotsocr

    @property
    def max_concurrency(self) -> int:
        return self.dotsocr.max_concurrency

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        result = self.dotsocr.recognize(page, prompt_mode=prompt_mode)
        return dataclasses.replace(result, reason=f"auto: a dots.ocr server is configured; {result.reason}")


def has_real_text(page: PdfPage) -> bool:
    """Whether `auto` reads this page from its text layer without checking it."""
    return judge_page(page.page).trust


def text_of(result: PageOcr) -> str:
    return " ".join(cell.text for cell in result.cells)


def word_agreement(layer_text: str, ocr_text: str) -> float:
    """Share of the layer's words (three letters or more, any case) that OCR read too."""
    layer = [word.lower() for word in WORDS.findall(layer_text)]
    read = {word.lower() for word in WORDS.findall(ocr_text)}
    return sum(1 for word in layer if word in read) / len(layer) if layer else 0.0
