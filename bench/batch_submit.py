"""Submitting a folder: N one-page PDFs as one `POST /api/v1/batches` against N
`POST /api/v1/conversions` (one client, one after the other), on a real daphne with no
workers, so what is measured is the web process and the database alone.

    .venv/bin/python -m bench.batch_submit [--files 500]

Prints the seconds of each way, files per second and the ratio (the single posts are
the reference, measured in the same run).
"""

import argparse
import time

import httpx

from bench import harness
from bench.harness import SAMPLE_PDF, empty_queue, scratch_bench

# A scratch database of its own: the main benchmark (dotsocr_bench) may run meanwhile.
harness.DATABASE_NAME = "dotsocr_bench_batch"


def one_batch(base_url: str, pdf: bytes, files: int) -> float:
    parts = [("file", (f"page-{number:04}.pdf", pdf, "application/pdf")) for number in range(files)]
    started = time.perf_counter()
    response = httpx.post(f"{base_url}/api/v1/batches", files=parts, data={"engine": "noop"}, timeout=600)
    elapsed = time.perf_counter() - started
    assert response.status_code == 201 and response.json()["total"] == files, response.text[:300]
    return elapsed


def single_posts(base_url: str, pdf: bytes, files: int) -> float:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        started = time.perf_counter()
        for number in range(files):
            response = client.post(
                "/api/v1/conversions", files={"file": (f"page-{number:04}.pdf", pdf)}, data={"engine": "noop"}
            )
            assert response.status_code == 201, response.text[:300]
        return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_submit", description=__doc__)
    parser.add_argument("--files", type=int, default=500)
    args = parser.parse_args(argv)
    pdf = SAMPLE_PDF.read_bytes()
    with scratch_bench(dpi=72) as bench:
        _, base_url = bench.web()
        batch_seconds = one_batch(base_url, pdf, args.files)
        empty_queue()
        single_seconds = single_posts(base_url, pdf, args.files)
        empty_queue()
    print(f"{args.files} one-page PDFs ({len(pdf)} bytes each), no workers:")
    print(f"  one batch          {batch_seconds:7.2f} s  {args.files / batch_seconds:7.1f} files/s")
    print(f"  single posts       {single_seconds:7.2f} s  {args.files / single_seconds:7.1f} files/s  (reference)")
    print(f"  batch / reference  {batch_seconds / single_seconds:7.2f} of the time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
