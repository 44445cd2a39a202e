"""Scenario 7: many one-page born-digital PDFs through the `textlayer` engine end to end,
against raw PyMuPDF text extraction of the same files (issue 20: pages/s at least 0.5x).

``files`` distinct one-page PDFs (10,000 by default; each a short invoice-like page of
text made with PyMuPDF) are stored as documents, and one queued `textlayer` job per
file is inserted with its task message (as bench/harness.py's enqueue_bulk does). One
qcluster with one worker per core drains them; pages/s = jobs completed / (last finished
- first started), from the rows. The reference, in the same run, is one process per core
each opening its share of the same files and extracting their text with
``page.get_text()`` (the raw PyMuPDF step the engine is built on).
"""

import multiprocessing
import os
import time
from pathlib import Path

from bench.harness import Bench, empty_queue, enqueue_messages, finished_timeline, job_counts, wait_drained


def invoice_pdf(index: int) -> bytes:
    import pymupdf

    document = pymupdf.open()
    page = document.new_page()
    lines = [
        f"INVOICE {index:06d}",
        "ACME Supplies Ltd, 1 Main Street",
        f"Customer {index % 97}",
        *(f"Item {row}: widget type {row * 7 % 13} ...... {row * 3.5 + index % 10:.2f} EUR" for row in range(8)),
        f"Total due: {index % 1000 + 99.5:.2f} EUR",
    ]
    for number, line in enumerate(lines):
        page.insert_text((72, 72 + number * 16), line, fontsize=11)
    data = document.tobytes()
    document.close()
    return data


def store_documents(files: int, folder: Path) -> list[str]:
    """``files`` documents, written straight to ``folder`` (a folder directly in the
    DATA_DIR the workers read, so ``<folder name>/<file>`` is its storage key) and
    inserted in bulk, as uploads leave them; their paths."""
    import hashlib

    from conversions import services
    from conversions.models import Document

    folder.mkdir(parents=True, exist_ok=True)
    owner = services.default_owner()
    rows, paths = [], []
    for index in range(files):
        data = invoice_pdf(index)
        path = folder / f"invoice-{index:06d}.pdf"
        path.write_bytes(data)
        paths.append(str(path))
        rows.append(
            Document(
                owner=owner,
                filename=path.name,
                stem=path.stem,
                stored_path=f"{folder.name}/{path.name}",  # a storage key: relative to DATA_DIR
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                page_count=1,
            )
        )
    Document.objects.bulk_create(rows, batch_size=2000)
    return paths


def enqueue_textlayer(batch: int = 2000) -> int:
    from django.db import transaction

    from conversions.models import Conversion, Document

    documents = list(Document.objects.filter(filename__startswith="invoice-").order_by("filename"))
    for offset in range(0, len(documents), batch):
        with transaction.atomic():
            rows = Conversion.objects.bulk_create(
                Conversion(
                    document=document, owner_id=document.owner_id, engine="textlayer", pages_total=1, message="Queued"
                )
                for document in documents[offset : offset + batch]
            )
            enqueue_messages(rows)
    return len(documents)


def extract(paths: list[str]) -> int:
    import pymupdf

    pages = 0
    for path in paths:
        with pymupdf.open(path) as document:
            for page in document:
                page.get_text()
                pages += 1
    return pages


def raw_pymupdf_pages_per_s(paths: list[str], processes: int) -> dict:
    shares = [paths[index::processes] for index in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(extract, [share[:5] for share in shares])  # imported and warm
        started = time.perf_counter()
        pages = sum(pool.map(extract, shares))
        elapsed = time.perf_counter() - started
    return {
        "processes": processes,
        "pages": pages,
        "seconds": round(elapsed, 2),
        "pages_per_s": round(pages / elapsed, 1),
    }


def run(bench: Bench, *, files: int, seconds: float) -> dict:
    from django.utils import timezone

    from conversions.models import Document

    cores = os.cpu_count() or 1
    empty_queue()
    paths = store_documents(files, bench.workdir / "data" / "invoices")
    reference = raw_pymupdf_pages_per_s(paths, cores)
    jobs = enqueue_textlayer()
    cluster = bench.cluster("textlayer-batch", cores)
    try:
        finished_all = wait_drained(jobs, time.monotonic() + seconds)
        cutoff = timezone.now()
    finally:
        bench.stop(cluster)
    starts, ends = finished_timeline()
    counted = [end for end in ends if end <= cutoff]
    first = min(starts) if starts else cutoff
    window_end = max(counted) if finished_all and counted else cutoff
    elapsed = max((window_end - first).total_seconds(), 1e-6)
    ours = round(len(counted) / elapsed, 1)
    result = {
        "files": files,
        "workers": cores,
        "completed": len(counted),
        "finished_all": finished_all,
        "seconds": round(elapsed, 2),
        "pages_per_s": ours,
        "counts_after_stop": job_counts(),
        "raw_pymupdf": reference,
        "ratio_to_raw_pymupdf": round(ours / reference["pages_per_s"], 3) if reference["pages_per_s"] else None,
    }
    empty_queue()
    Document.objects.filter(filename__startswith="invoice-").delete()
    print(
        f"  textlayer batch: {len(counted)}/{files} one-page PDFs in {result['seconds']} s = {ours} pages/s "
        f"with {cores} workers; raw PyMuPDF {reference['pages_per_s']} pages/s in {cores} processes: "
        f"{result['ratio_to_raw_pymupdf']}x",
        flush=True,
    )
    return result


# --- where a textlayer job's time goes ------------------------------------------------------


def engine_only_ms(paths: list[str]) -> dict:
    """Per file, in this process: raw PyMuPDF (open + ``get_text()``), and the textlayer
    engine alone on the same page (open + ``TextLayerEngine.recognize``, no queue, no
    outputs), in ms. The gap between the two is the layout analysis; the gap between the
    engine and a job is the service."""
    import pymupdf

    from workers.ocr.textlayer import TextLayerEngine
    from workers.pdf import iter_pages, open_pdf

    started = time.perf_counter()
    for path in paths:
        with pymupdf.open(path) as document:
            for page in document:
                page.get_text()
    raw = (time.perf_counter() - started) / len(paths) * 1000
    started = time.perf_counter()
    for path in paths:
        engine = TextLayerEngine()
        with open_pdf(Path(path)) as document:
            for page in iter_pages(document, 200):
                engine.recognize(page, prompt_mode="prompt_layout_all_en")
    engine_ms = (time.perf_counter() - started) / len(paths) * 1000
    return {"raw_pymupdf_ms_per_file": round(raw, 2), "textlayer_engine_ms_per_file": round(engine_ms, 2)}


def run_profile(bench: Bench, *, files: int, results_dir: Path) -> dict:
    """``files`` one-page textlayer jobs run one after another by the workers' task
    function in this process under pyinstrument (profile-textlayer.txt/.html in
    ``results_dir``), with the time per stage (bench/throughput.py's stages), beside the
    engine alone and raw PyMuPDF on the same files (engine_only_ms)."""
    from bench.throughput import profile_jobs
    from conversions.models import Document
    from workers.tasks import run_conversion

    empty_queue()
    paths = store_documents(files, bench.workdir / "data" / "invoices")
    jobs = enqueue_textlayer()
    assert run_conversion("profile") == "completed"  # warm: imports, connection, engine
    baseline = engine_only_ms(paths[:200])
    run = profile_jobs(jobs - 1, results_dir=results_dir, name="profile-textlayer")
    done, elapsed, cpu, stages = run.done, run.elapsed, run.cpu, run.stages
    result = {
        "jobs": done,
        "ms_per_job": round(elapsed / max(done, 1) * 1000, 2),
        "cpu_ms_per_job": round(cpu / max(done, 1) * 1000, 2),  # profiler included
        **baseline,
        "stages_ms_per_job": {
            name: round(seconds / max(done, 1) * 1000, 2)
            for name, seconds in sorted(stages.items(), key=lambda item: -item[1])
        },
        "profile_files": run.files,
    }
    empty_queue()
    Document.objects.filter(filename__startswith="invoice-").delete()
    top = ", ".join(f"{name} {ms}" for name, ms in list(result["stages_ms_per_job"].items())[:6])
    print(
        f"  textlayer profile: {done} one-page jobs in one process, {result['ms_per_job']} ms/job; engine alone "
        f"{result['textlayer_engine_ms_per_file']} ms, raw PyMuPDF {result['raw_pymupdf_ms_per_file']} ms per file; "
        f"{top}",
        flush=True,
    )
    return result
