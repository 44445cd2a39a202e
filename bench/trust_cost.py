"""What judging text layers and finding a scan's orientation cost (issue 15), against
the work they sit beside, measured in the same run. No database, no Django.

A  judge_page (workers/ocr/trust.py) on every page of the sample corpus, against
   TextLayerEngine.recognize on the same pages: the share `auto` adds to a text page.
B  RapidOcrEngine on the generated scan upright, and turned 90/180/270 degrees: the
   upright page takes one reading, a turned one four small probes and a full reading.

Run: `.venv/bin/python -m bench.trust_cost` (about a minute on a quiet 2-core machine).
"""

import time
from pathlib import Path

import pymupdf

from bench import trust_samples as documents
from workers.ocr.rapidocr import RapidOcrEngine, reader
from workers.ocr.textlayer import TextLayerEngine
from workers.ocr.trust import judge_page
from workers.pdf import PdfPage

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sample-files"
SKIP = {"GeoTopo-komprimiert.pdf"}  # 100+ pages: minutes of text layout, nothing new to measure


def corpus_pages():
    for path in sorted(CORPUS.rglob("*.pdf")):
        if path.name in SKIP:
            continue
        try:
            document = pymupdf.open(path)
        except (pymupdf.FileDataError, RuntimeError):  # the corpus's damaged file
            continue
        if document.needs_pass:
            continue
        yield from (PdfPage(page=page, dpi=200) for page in document)


def measure_judging() -> None:
    pages = list(corpus_pages())
    started = time.perf_counter()
    for page in pages:
        judge_page(page.page)
    judging = time.perf_counter() - started
    started = time.perf_counter()
    for page in pages:
        TextLayerEngine().recognize(page, prompt_mode="prompt_layout_all_en")
    layout = time.perf_counter() - started
    print(
        f"A  {len(pages)} corpus pages: judge_page {judging * 1000 / len(pages):.1f} ms/page, "
        f"textlayer {layout * 1000 / len(pages):.1f} ms/page, ratio {judging / layout:.2f}"
    )


def measure_orientation() -> None:
    reader()  # load the models outside the timings
    upright = None
    for angle in (0, 90, 180, 270):
        page = PdfPage(page=pymupdf.open("pdf", documents.turned_scan(angle))[0], dpi=200)
        page.render()
        started = time.perf_counter()
        result = RapidOcrEngine().recognize(page, prompt_mode="prompt_layout_all_en")
        seconds = time.perf_counter() - started
        upright = upright or seconds
        print(f"B  scan turned {angle:3d}: {seconds:.2f} s ({seconds / upright:.1f}x upright); {result.reason}")


if __name__ == "__main__":
    measure_judging()
    measure_orientation()
