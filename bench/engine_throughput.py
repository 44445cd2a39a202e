"""Page throughput of the OCR engines in one process, against what they could reach.

A   one 100-page job through DotsOcrEngine, 64 pages in flight (in_flight_per_server=64,
    a pool of 64: the pipeline's min(NUM_THREAD, engine.max_concurrency) with
    NUM_THREAD=64), against a stand-in vLLM answering in 2 s with room for 64 requests at
    once, as a GPU batch: its capacity is 64 / 2 s = 32 pages/s.
A0  the same job with the shipped defaults: min(NUM_THREAD=16, in_flight_per_server=8).
A2  A with pages rendered at 200 DPI, the pipeline's default, for comparison.
B   four 100-page jobs at once sharing one engine (in_flight_per_server=64), 16 pages of
    each in flight, as four job threads would.
C   TextLayerEngine against PyMuPDF's raw ``page.get_text("dict")`` on a 100-page text PDF.

Pages are generated with PyMuPDF (one short line each for A/B) and rendered at 72 DPI
(``PdfPage(page, dpi=72)``) so that rendering and PNG encoding cost little: the numbers
measure how well the engine keeps the server busy, not how fast pages are drawn.
"ideal" counts whole rounds: 100 pages in 64 slots take two 2 s rounds, 25 pages/s.

No database and no Django: workers/ocr and workers/pdf do not need them. The engine runs
in this process; the stand-in (tests/dotsocr_standin.py) in a child process of its own,
as vLLM would, so that its request parsing does not compete with the engine for the GIL.
Run: `.venv/bin/python -m bench.engine_throughput` (about 75 s; `--help` for the knobs).
"""

import argparse
import math
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass

import pymupdf

from tests.dotsocr_standin import DotsOcrStandin
from workers.ocr.dotsocr import DotsOcrEngine
from workers.ocr.dotsocr_config import DotsOcrConfig
from workers.ocr.textlayer import TextLayerEngine
from workers.pdf import PdfPage, iter_pages

PROMPT_MODE = "prompt_layout_all_en"
BENCH_DPI = 72
PIPELINE_DPI = 200  # settings.RENDER_DPI's default
# The shipped defaults: settings.NUM_THREAD and DotsOcrConfig.in_flight_per_server.
DEFAULT_NUM_THREAD = 16
DEFAULT_IN_FLIGHT_PER_SERVER = DotsOcrConfig.in_flight_per_server
JOB_TIMEOUT_SECONDS = 120  # keeps the bench bounded if the engine stalls
TEXTLAYER_REPEATS = 10


@dataclass
class Row:
    scenario: str
    pages: int
    in_flight: str
    seconds: float
    capacity: float | None = None  # pages/s the server could deliver
    ideal: float | None = None  # pages/s reachable in whole rounds
    peak: int | None = None  # most requests the server saw at once

    @property
    def rate(self) -> float:
        return self.pages / self.seconds


# --- documents -------------------------------------------------------------------------


def one_line_pdf(pages: int, label: str) -> pymupdf.Document:
    document = pymupdf.open()
    for number in range(pages):
        document.new_page().insert_text((72, 100), f"{label}: page {number + 1}, a short line of text.", fontsize=12)
    return document


def text_pdf(pages: int) -> pymupdf.Document:
    """Pages as a born-digital report: a heading, three paragraphs and a page number."""
    paragraph = " ".join(["Layout parsing turns a page into cells with boxes, categories and text."] * 6)
    document = pymupdf.open()
    for number in range(pages):
        page = document.new_page()
        page.insert_text((72, 80), f"Section {number + 1}: Results", fontsize=18)
        for index in range(3):
            top = 110 + index * 200
            page.insert_textbox(pymupdf.Rect(72, top, 523, top + 180), paragraph, fontsize=10)
        page.insert_text((290, 800), str(number + 1), fontsize=9)
    return document


# --- dots.ocr --------------------------------------------------------------------------


@dataclass
class RunningStandin:
    url: str
    peak_in_flight: int = 0


def serve_standin(latency: float, capacity: int, control) -> None:
    """The child process: serve until the parent says stop, then report the peak."""
    with DotsOcrStandin(latency=latency, capacity=capacity) as server:
        control.send(server.url)
        control.recv()
        control.send(server.peak_in_flight)


@contextmanager
def standin_process(*, latency: float, capacity: int) -> Iterator[RunningStandin]:
    context = multiprocessing.get_context("spawn")
    control, child_end = context.Pipe()
    process = context.Process(target=serve_standin, args=(latency, capacity, child_end), daemon=True)
    process.start()
    try:
        deadline = time.perf_counter() + 30
        while not control.poll(0.1):
            if not process.is_alive() or time.perf_counter() > deadline:
                raise RuntimeError(f"the stand-in server did not start (exit code {process.exitcode})")
        server = RunningStandin(url=control.recv())
        yield server
        control.send("stop")
        server.peak_in_flight = control.recv()
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


def run_job(engine: DotsOcrEngine, pages: list[PdfPage], width: int) -> None:
    """The pages of one job, at most ``width`` in flight: the loop of
    workers/pipeline.py convert_pages (which needs Django, so it is mirrored here)."""
    with ThreadPoolExecutor(max_workers=width) as pool:
        in_flight = set()
        for page in pages:
            in_flight.add(pool.submit(engine.recognize, page, prompt_mode=PROMPT_MODE))
            if len(in_flight) >= width:
                finished, in_flight = wait(in_flight, timeout=JOB_TIMEOUT_SECONDS, return_when=FIRST_COMPLETED)
                check(finished)
        finished, not_done = wait(in_flight, timeout=JOB_TIMEOUT_SECONDS)
        if not_done:
            raise TimeoutError(f"{len(not_done)} pages unfinished after {JOB_TIMEOUT_SECONDS} s")
        check(finished)


def check(finished) -> None:
    if not finished:
        raise TimeoutError(f"no page finished within {JOB_TIMEOUT_SECONDS} s")
    for future in finished:
        result = future.result()
        if result.engine != "dotsocr" or not result.cells:
            raise AssertionError(f"unexpected result {result.engine} with {len(result.cells)} cells")


def dotsocr_jobs(
    scenario: str,
    *,
    jobs: int,
    pages: int,
    width: int,
    in_flight_per_server: int,
    latency: float,
    capacity: int,
    dpi: int = BENCH_DPI,
) -> Row:
    """``jobs`` jobs of ``pages`` pages at once through one engine; each job ``width`` wide."""
    documents = [one_line_pdf(pages, f"job {index + 1}") for index in range(jobs)]
    with standin_process(latency=latency, capacity=capacity) as server:
        config = DotsOcrConfig(base_urls=[server.url], in_flight_per_server=in_flight_per_server, timeout_seconds=30)
        with DotsOcrEngine(config) as engine:
            job_pages = [list(iter_pages(document, dpi)) for document in documents]
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=jobs) as job_threads:
                for job in [job_threads.submit(run_job, engine, pages_of_job, width) for pages_of_job in job_pages]:
                    job.result(timeout=JOB_TIMEOUT_SECONDS * 2)
            seconds = time.perf_counter() - started
    peak = server.peak_in_flight
    for document in documents:
        document.close()
    slots = min(jobs * width, in_flight_per_server, capacity)
    rounds = math.ceil(pages / min(width, slots))  # every job runs its own pages in rounds
    return Row(
        scenario=scenario,
        pages=jobs * pages,
        in_flight=f"{jobs}x{width}",
        seconds=seconds,
        capacity=capacity / latency,
        ideal=jobs * pages / (rounds * latency),
        peak=peak,
    )


# --- text layer ------------------------------------------------------------------------


def textlayer_rows(pages: int) -> list[Row]:
    """Best of a few passes each, alternating, so neither side gets a warmer cache."""
    document = text_pdf(pages)
    engine = TextLayerEngine()
    raw_best = engine_best = math.inf
    for _ in range(TEXTLAYER_REPEATS):
        started = time.perf_counter()
        for number in range(pages):
            document[number].get_text("dict")
        raw_best = min(raw_best, time.perf_counter() - started)
        started = time.perf_counter()
        for number in range(pages):
            result = engine.recognize(PdfPage(page=document[number], dpi=BENCH_DPI), prompt_mode=PROMPT_MODE)
            assert result.cells, "the text layer engine found nothing"
        engine_best = min(engine_best, time.perf_counter() - started)
    document.close()
    return [
        Row(scenario='C  raw page.get_text("dict")', pages=pages, in_flight="1", seconds=raw_best),
        Row(scenario="C  TextLayerEngine.recognize", pages=pages, in_flight="1", seconds=engine_best),
    ]


# --- report ----------------------------------------------------------------------------


def ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}" if value is not None and reference else "-"


def number(value: float | None, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if value is not None else "-"


def print_table(rows: list[Row]) -> None:
    headers = (
        "scenario",
        "pages",
        "in flight",
        "peak",
        "seconds",
        "pages/s",
        "capacity/s",
        "ratio",
        "ideal/s",
        "of ideal",
    )
    lines = [
        (
            row.scenario,
            str(row.pages),
            row.in_flight,
            number(row.peak, 0),
            number(row.seconds, 2),
            number(row.rate),
            number(row.capacity),
            ratio(row.rate, row.capacity),
            number(row.ideal),
            ratio(row.rate, row.ideal),
        )
        for row in rows
    ]
    widths = [max(len(header), *(len(line[index]) for line in lines)) for index, header in enumerate(headers)]
    print("  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=100, help="pages per job (default 100)")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the stand-in takes per answer")
    parser.add_argument("--capacity", type=int, default=64, help="requests the stand-in works on at once")
    args = parser.parse_args()
    server = {"latency": args.latency, "capacity": args.capacity}
    rows = [
        dotsocr_jobs("A  1 job, 64 in flight", jobs=1, pages=args.pages, width=64, in_flight_per_server=64, **server),
        dotsocr_jobs(
            "A0 1 job, shipped defaults",
            jobs=1,
            pages=args.pages,
            width=min(DEFAULT_NUM_THREAD, DEFAULT_IN_FLIGHT_PER_SERVER),
            in_flight_per_server=DEFAULT_IN_FLIGHT_PER_SERVER,
            **server,
        ),
        dotsocr_jobs("B  4 jobs, 16 each", jobs=4, pages=args.pages, width=16, in_flight_per_server=64, **server),
        dotsocr_jobs(
            "A2 as A, at 200 DPI",
            jobs=1,
            pages=args.pages,
            width=64,
            in_flight_per_server=64,
            dpi=PIPELINE_DPI,
            **server,
        ),
    ]
    rows += textlayer_rows(args.pages)
    print_table(rows)
    raw, textlayer = rows[-2:]
    print(f"\nC: TextLayerEngine runs at {textlayer.rate / raw.rate:.2f} of raw get_text('dict') (goal >= 0.7)")
    print(
        f"A/B: pages/s over the server's capacity ({args.capacity} / {args.latency:g} s); goal >= 0.9. "
        "'ideal' counts whole rounds of the pages in flight, so a last, partly filled round is not held against it."
    )


if __name__ == "__main__":
    main()
