"""Time of the text-layer engine on a page crowded with vector drawings, against a plain page.

The page of issue 15, kind 7: a ruled table with its caption beside a scatter plot of
1,200 vector markers (bench/reading_samples.py, ``table_page``). The reference, measured in
the same run, is the same table page without the plot. Each page is read by
``TextLayerEngine`` as shipped ("bounded": past MAX_TABLE_ITEMS drawing items the table step
skips the layout model and sees only long straight strokes) and with the bound lifted
("unbounded", what the engine did before), and the script prints seconds per page and
the ratio to the plain page. Goal: the crowded page within a small factor of the plain
one, its table and caption still found.

No database and no Django. Run: `.venv/bin/python -m bench.textlayer_pages [--markers N] [--repeat N]`.
"""

import argparse
import time
from contextlib import contextmanager

import pymupdf

from bench import reading_samples as documents
from workers.ocr import textlayer_tables
from workers.ocr.textlayer import TextLayerEngine
from workers.pdf import PdfPage


def seconds_per_page(data: bytes, repeat: int) -> tuple[float, list[str]]:
    """The best of ``repeat`` reads of the page (a fresh document each time: MuPDF caches)."""
    best, categories = float("inf"), []
    for _ in range(repeat):
        document = pymupdf.open("pdf", data)
        page = PdfPage(page=document[0], dpi=72)
        started = time.perf_counter()
        cells = TextLayerEngine().recognize(page, prompt_mode="prompt_layout_all_en").cells
        best = min(best, time.perf_counter() - started)
        categories = [cell.category for cell in cells]
        document.close()
    return best, categories


@contextmanager
def unbounded():
    saved = textlayer_tables.MAX_TABLE_ITEMS
    textlayer_tables.MAX_TABLE_ITEMS = 10**9
    try:
        yield
    finally:
        textlayer_tables.MAX_TABLE_ITEMS = saved


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markers", type=int, default=1200)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    plain, crowded = documents.table_page(0), documents.table_page(args.markers)
    seconds_per_page(plain, 1)  # load the layout model once, outside the measurements
    rows = []
    for mode in ("bounded", "unbounded"):
        with unbounded() if mode == "unbounded" else _nothing():
            reference, _ = seconds_per_page(plain, args.repeat)
            measured, categories = seconds_per_page(crowded, args.repeat)
        rows.append((mode, reference, measured, categories))
    print(f"table page beside a scatter plot of {args.markers} markers, best of {args.repeat}")
    print(f"{'mode':<10} {'plain s':>8} {'crowded s':>10} {'ratio':>7}  cells")
    for mode, reference, measured, categories in rows:
        print(f"{mode:<10} {reference:>8.2f} {measured:>10.2f} {measured / reference:>7.2f}  {', '.join(categories)}")
    before, after = rows[1][2], rows[0][2]
    print(f"crowded page: {before:.2f} s unbounded -> {after:.2f} s bounded ({before / after:.1f}x faster)")


@contextmanager
def _nothing():
    yield


if __name__ == "__main__":
    main()
