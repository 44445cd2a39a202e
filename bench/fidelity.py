"""How faithfully documents become Markdown: our `auto` engine beside pymupdf4llm.

``python -m bench.fidelity`` (also run by ``make bench``) converts every document of
bench/documents.py (generated pages and the shared corpus) twice in one run:

- ours: the pipeline's own path, in-process and without Django: workers.pdf renders
  each page at the service's default DPI, the `auto` engine without a dots.ocr server
  (per page the text layer or RapidOCR) reads it, workers.ocr.layout.cells_to_markdown
  writes the Markdown (pages joined as in ``<stem>.md``);
- the peer: ``pymupdf4llm.to_markdown``, the PyMuPDF authors' PDF-to-Markdown package.

It prints the pass rate per check type for both (checks: bench/fidelity_checks.py), the
checks each one failed, and the time each took, and writes everything (with each
engine's Markdown) to bench/results/fidelity.json. ``--no-corpus`` leaves the corpus out; ``--only NAME...``
runs some documents.
"""

import argparse
import contextlib
import io
import json
import tempfile
import time
import traceback
from collections import defaultdict
from pathlib import Path

from bench.documents import Document, all_documents
from bench.fidelity_checks import CHECK_KINDS, describe

RESULTS = Path(__file__).resolve().parent / "results" / "fidelity.json"
# The service's defaults (dotsocr_site/settings.py: DPI, MAX_PAGE_CONTENT_MB).
RENDER_DPI = 200
MAX_PAGE_CONTENT_MB = 128


def ours(path: Path, max_pages: int | None) -> str:
    from workers.ocr import engine_for
    from workers.ocr.base import DEFAULT_PROMPT_MODE
    from workers.ocr.layout import cells_to_markdown
    from workers.outputs import picture_name
    from workers.pdf import iter_pages, open_pdf

    engine = engine_for("auto", dotsocr=None)
    pages = []
    with open_pdf(path) as document:
        for page in iter_pages(document, RENDER_DPI, MAX_PAGE_CONTENT_MB):
            if max_pages is not None and page.number >= max_pages:
                break
            result = engine.recognize(page, prompt_mode=DEFAULT_PROMPT_MODE)

            def link(index, cell, number=page.number):
                return picture_name(path.stem, number, index)

            pages.append(cells_to_markdown(result.cells, picture_link=link))
    return "\n\n".join(pages)


def peer(path: Path, max_pages: int | None) -> str:
    """pymupdf4llm as its authors ship it (its layout parser, OCR where it sees fit). Its
    RapidOCR step fails on some pages (a TypeError inside the package): those documents
    are read again without OCR, so the peer is scored on its best."""
    import pymupdf
    import pymupdf4llm

    with pymupdf.open(path) as document:
        count = document.page_count
    pages = list(range(min(count, max_pages))) if max_pages else None
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its parser chatters
        try:
            return pymupdf4llm.to_markdown(str(path), pages=pages, show_progress=False)
        except Exception as failure:
            PEER_RETRIES.append(f"{path.name}: {type(failure).__name__}: {failure}")
            return pymupdf4llm.to_markdown(str(path), pages=pages, show_progress=False, use_ocr=False)


PEER_RETRIES: list[str] = []
ENGINES = {"ours (auto)": ours, "pymupdf4llm": peer}


def run_document(document: Document, folder: Path) -> dict:
    """Each engine's Markdown of one document and the outcome of every check."""
    path = folder / f"{document.name.replace('/', '__')}"
    path = path.with_suffix(".pdf")
    path.write_bytes(document.pdf)
    outcome = {"name": document.name, "source": document.source, "engines": {}}
    for engine_name, convert in ENGINES.items():
        started = time.perf_counter()
        error = None
        try:
            markdown = convert(path, document.max_pages)
        except Exception as failure:  # a document one engine cannot read fails its checks, not the run
            markdown, error = "", f"{type(failure).__name__}: {failure}"
            traceback.print_exc()
        outcome["engines"][engine_name] = {
            "seconds": round(time.perf_counter() - started, 3),
            "error": error,
            "markdown": markdown,  # kept in the JSON so a failed check can be read against the output
            "checks": [
                {"check": describe(check), "kind": check.kind, "passed": check.passes(markdown)}
                for check in document.checks
            ],
        }
    return outcome


def pass_rates(outcomes: list[dict]) -> dict[str, dict[str, list[int]]]:
    """engine -> check kind -> [passed, total]; kind "all" sums them."""
    rates: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for outcome in outcomes:
        for engine_name, result in outcome["engines"].items():
            for check in result["checks"]:
                for kind in (check["kind"], "all"):
                    rates[engine_name][kind][0] += check["passed"]
                    rates[engine_name][kind][1] += 1
    return {engine: dict(kinds) for engine, kinds in rates.items()}


def print_report(outcomes: list[dict], rates: dict) -> None:
    engines = list(ENGINES)
    print(f"\n{'check type':<12}" + "".join(f"{engine:>22}" for engine in engines))
    for kind in (*CHECK_KINDS, "all"):
        cells = []
        for engine in engines:
            passed, total = rates.get(engine, {}).get(kind, [0, 0])
            cells.append(f"{passed}/{total} ({100 * passed / total:.0f}%)" if total else "-")
        print(f"{kind:<12}" + "".join(f"{cell:>22}" for cell in cells))
    seconds = {engine: sum(outcome["engines"][engine]["seconds"] for outcome in outcomes) for engine in engines}
    print(f"{'seconds':<12}" + "".join(f"{seconds[engine]:>22.1f}" for engine in engines))
    print("\nfailed checks:")
    for outcome in outcomes:
        for engine in engines:
            result = outcome["engines"][engine]
            failed = [check["check"] for check in result["checks"] if not check["passed"]]
            if failed or result["error"]:
                print(f"  {outcome['name']} [{engine}]: {result['error'] or ''}")
                for check in failed:
                    print(f"      {check}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fidelity", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-corpus", action="store_true", help="generated documents only")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these documents (by name)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"default {RESULTS}")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    documents = all_documents(corpus=None) if args.no_corpus else all_documents()
    if args.only:
        documents = [document for document in documents if document.name in args.only]
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="fidelity-") as folder:
        for document in documents:
            print(f"[fidelity] {document.name} ...", flush=True)
            outcomes.append(run_document(document, Path(folder)))
    rates = pass_rates(outcomes)
    print_report(outcomes, rates)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {"pass_rates": rates, "peer_retries": PEER_RETRIES, "documents": outcomes}
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    for retry in PEER_RETRIES:
        print(f"[fidelity] pymupdf4llm failed with OCR and was run without it: {retry}")
    print(f"\n[fidelity] results in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
