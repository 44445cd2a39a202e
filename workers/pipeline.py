"""One conversion, start to finish: claim -> open PDF -> pages -> outputs -> completed.

Each page is checkpointed as a PageResult in its own transaction before the next starts,
so a job that is run again resumes after its last finished page.
"""

import logging
import os
import random
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pymupdf
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from conversions import partial, selectors, services, storage
from conversions.exceptions import LostClaim
from conversions.models import Conversion, PageResult
from workers import inputs, outputs, page_ranges, shutdown
from workers.inputs import repair
from workers.ocr import DotsOcrConfig, EngineError, engine_for, rapidocr
from workers.pages import (
    Cancelled,
    JobTimedOut,
    Limits,
    PageRunner,
    PageTimedOut,
    PageWriter,
    picture_crops,
)
from workers.pdf import PYMUPDF_LOCK, InvalidPdf, PdfPage, iter_pages, open_pdf

logger = logging.getLogger(__name__)


class Heartbeat:
    """Renews the lease of the job this worker process runs, every ``interval`` s, from a
    side thread: one page can take minutes, and a job whose lease expires is given to
    another worker by the reaper.

    One thread per process, kept from job to job (most jobs end before their first beat,
    and a thread start and join per job cost more than the job's own statements on a
    busy machine). Between jobs it waits, its database connection closed. A beat that
    finds the job no longer this worker's stops beating for it; the job's thread finds
    out at its next write."""

    def __init__(self):
        self.changed = threading.Condition()
        self.job: tuple[Conversion, float] | None = None  # (conversion, interval s)
        self.thread: threading.Thread | None = None
        self.pid: int | None = None
        self.beat_started: float | None = None  # time.monotonic() of the beat in flight

    @contextmanager
    def keeping(self, conversion: Conversion, *, interval: float) -> Iterator[None]:
        with self.changed:
            if self.job is not None:
                raise RuntimeError("A worker process keeps one job's lease at a time.")
            if not self.beating(interval):
                # Started lazily, in the process that runs jobs (threads do not survive a
                # fork), and again if the last one died or hangs in a beat (a connection
                # lost without a reset): the one that hangs leaves when its beat returns.
                self.thread = threading.Thread(target=self.beat_forever, name="heartbeat", daemon=True)
                self.pid, self.beat_started = os.getpid(), None
                self.thread.start()
            self.job = (conversion, interval)
            self.changed.notify()
        try:
            yield
        finally:
            with self.changed:
                self.job = None
                self.changed.notify()

    def beating(self, interval: float) -> bool:
        """Whether this process has a heartbeat thread that can beat for a new job."""
        if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
            return False
        started = self.beat_started
        return started is None or time.monotonic() - started < interval

    def beat_forever(self) -> None:
        while threading.current_thread() is self.thread:
            with self.changed:
                self.changed.wait_for(lambda: self.job is not None)
                job = self.job
            assert job is not None
            self.keep(job)
            with self.changed:
                idle = self.job is None
            if idle:
                connection.close()  # this thread's own connection, while no job runs

    def keep(self, job: tuple[Conversion, float]) -> None:
        """Beat for ``job`` every interval until it ends, or until a beat finds that it is
        no longer this worker's."""
        conversion, interval = job
        while True:
            with self.changed:
                if self.changed.wait_for(lambda: self.job is not job, timeout=interval):
                    return  # the job ended before its next beat was due
            if not self.beat(conversion):
                with self.changed:
                    self.changed.wait_for(lambda: self.job is not job)
                return

    def beat(self, conversion: Conversion) -> bool:
        """Renew the lease once; False once the job is no longer this worker's."""
        current = threading.current_thread() is self.thread  # not one replaced while it hung
        if current:
            self.beat_started = time.monotonic()
        try:
            return services.renew_lease(conversion=conversion)
        except (OperationalError, InterfaceError) as error:
            # The database is restarting: beat again on a fresh connection.
            logger.warning("conversion=%s heartbeat missed: %s", conversion.pk, error)
            connection.close()
        except Exception:
            logger.exception("conversion=%s heartbeat failed", conversion.pk)
        finally:
            if current:
                self.beat_started = None
        return True


heartbeat = Heartbeat()


def run_next_queued(wake_up: str = "") -> str:
    """Claim the conversion that should run next (services.claim_next: priority, fair
    share, age) and run it to its end; the outcome ("completed", "failed", ...).

    ``wake_up`` is the payload of the message that woke this worker (the id of the job
    that sent it, or "wake-up"), only logged: the job that runs may be another. A no-op
    ("skipped") when nothing is queued (a second delivery, a cancelled job).
    """
    if shutdown.requested.is_set():
        # Asked to stop after its last job, this worker took one more message: it
        # claims nothing (a claim counts an attempt) and leaves.
        end_worker_process(f"message={wake_up} not run: the worker is stopping")
    conversion = claim_through_outage()
    if conversion is None:
        logger.info("conversion=%s woke a worker; nothing queued", wake_up)
        return "skipped"
    logger.info("conversion=%s claimed worker=%s attempt=%s", conversion.pk, conversion.worker_id, conversion.attempts)
    outcome, end_worker = run_claimed(conversion)
    if end_worker:
        # Released for a stop, or a page thread is stuck (it cannot be killed, and may
        # hold the PDF library's lock): end this worker process now; django-q2 starts a
        # fresh one unless the cluster is stopping. A job that ended otherwise returns
        # its outcome first; a worker asked to stop then leaves when it asks for its
        # next task (shutdown.waiting_for_task).
        end_worker_process(f"conversion={conversion.pk} {outcome}")
    return outcome


# The old name, still called by tests and tools; its argument was never the job that runs.
run_conversion = run_next_queued


def claim_through_outage() -> Conversion | None:
    """services.claim_next, tried again on a new connection when the database dropped
    this one (a restart, a failover): the message that woke this worker is spent either
    way, and without a claim its job would wait for the reaper's wake-up (a minute).

    Only a lost connection is retried, with capped exponential backoff and jitter, for up
    to DB_RECONNECT_SECONDS; a statement that failed on a live connection (a timeout, a
    deadlock) raises at once, as does a stop (checked during each pause and before each
    claim). A connection attempt itself may block for as long as the server's address
    does not answer (libpq's connect_timeout; unset: the system's TCP timeout). A claim
    whose commit was lost with the connection is not seen here: that job stays
    ``running`` until its lease expires, and the reaper requeues it."""
    deadline = time.monotonic() + settings.DB_RECONNECT_SECONDS
    delay = 0.2
    while True:
        try:
            return services.claim_next(worker_id=services.current_worker_id())
        except (OperationalError, InterfaceError) as error:
            if connection.in_atomic_block or connection.is_usable():
                raise  # the statement failed, not the connection
            pause = delay * random.uniform(0.5, 1.5)
            if time.monotonic() + pause > deadline:
                raise
            logger.warning("claim failed, database connection lost: %s; again in %.1f s", error, pause)
            connection.close()  # the next query opens a new one
            if shutdown.requested.wait(pause):
                raise
            delay = min(delay * 2, 5)


def run_one(conversion_id) -> str:
    """Claim exactly this conversion (the same conditional update as any claim) and run it
    here, in this process (`manage.py convert --sync`); "skipped" if it is not queued.
    Never ends the process: the caller is not a worker."""
    conversion = services.claim_conversion(conversion_id=conversion_id, worker_id=services.current_worker_id())
    if conversion is None:
        logger.info("conversion=%s not queued; not run", conversion_id)
        return "skipped"
    logger.info("conversion=%s claimed worker=%s attempt=%s", conversion.pk, conversion.worker_id, conversion.attempts)
    outcome, _ = run_claimed(conversion)
    return outcome


def end_worker_process(why: str) -> None:
    logger.info("%s; worker process exits", why)
    shutdown.exit_worker_process()


class JobEnd(NamedTuple):
    """How a claimed job ended in this worker."""

    outcome: str  # "completed", "failed", "cancelled", "released" or "lost"
    end_worker: bool  # end this worker process now (released for a stop, or a stuck page)


def run_claimed(conversion: Conversion) -> JobEnd:
    """Convert a claimed job and record how it ended."""
    try:
        with heartbeat.keeping(conversion, interval=settings.LEASE_SECONDS / 4):
            convert(conversion)
    except Cancelled:
        services.finish_cancelled(conversion=conversion)
        logger.info("conversion=%s cancelled", conversion.pk)
        return JobEnd("cancelled", False)
    except shutdown.ShuttingDown:
        services.release_conversion(conversion=conversion, message="Waiting to resume (its worker was stopped)")
        logger.info("conversion=%s released: the worker is shutting down", conversion.pk)
        return JobEnd("released", True)
    except LostClaim as error:
        logger.warning("conversion=%s %s", conversion.pk, error)
        return JobEnd("lost", False)
    except (OperationalError, InterfaceError) as error:
        return JobEnd(recover_from_database_outage(conversion, error), False)
    except (
        InvalidPdf,
        inputs.InvalidInput,
        EngineError,
        JobTimedOut,
        PageTimedOut,
        page_ranges.PageRangeError,
    ) as error:
        services.fail_conversion(conversion=conversion, error=str(error))
        logger.info("conversion=%s failed reason=%r", conversion.pk, str(error))
        return JobEnd("failed", isinstance(error, PageTimedOut))
    except Exception as error:
        logger.exception("conversion=%s crashed", conversion.pk)
        services.fail_conversion(conversion=conversion, error=f"Internal error: {type(error).__name__}: {error}")
        return JobEnd("failed", False)
    logger.info("conversion=%s completed", conversion.pk)
    return JobEnd("completed", False)


def recover_from_database_outage(conversion: Conversion, error: Exception) -> str:
    """The database went away mid-job (restart, failover, dropped connection): wait for
    it, then give the job back to the queue. It resumes after its last checkpoint; the
    pages in flight are done again, which is why they were not checkpointed."""
    logger.warning("conversion=%s database connection lost: %s", conversion.pk, error)
    deadline = time.monotonic() + settings.DB_RECONNECT_SECONDS
    while wait_for_database(deadline - time.monotonic()):
        try:
            services.release_conversion(conversion=conversion, message="Waiting to resume (database connection lost)")
        except (OperationalError, InterfaceError) as again:  # lost again while releasing
            logger.warning("conversion=%s database connection lost again: %s", conversion.pk, again)
            continue
        logger.info("conversion=%s released after a database outage", conversion.pk)
        return "released"
    # Still down: the job stays `running` until its lease expires and the reaper (which
    # runs once the database is back) requeues it.
    logger.error("conversion=%s database still unreachable; the lease reaper will requeue it", conversion.pk)
    return "abandoned"


def wait_for_database(timeout: float) -> bool:
    """Reconnect, retrying with capped exponential backoff and jitter; False on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        connection.close()  # drop the broken connection; the next query opens a new one
        try:
            connection.ensure_connection()
            return True
        except (OperationalError, InterfaceError):
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 5)


def convert(conversion: Conversion) -> None:
    stem = outputs.safe_stem(conversion.document.filename)
    staging = settings.STAGING_DIR / str(conversion.pk)
    rapidocr.use_threads(settings.OCR_CPU_THREADS)
    engine = engine_for(conversion.engine, dotsocr=dotsocr_config_for(conversion.engine))
    limits = Limits.from_settings()
    with opened_input(conversion) as document:
        selection = record_page_count(conversion, document.page_count)
        job_page_of = {number: index for index, number in enumerate(selection)}  # job page i: selection[i]
        # pages_done counts the job's checkpoints (services.checkpoint_page): none, none to skip.
        done = selectors.checkpointed_page_numbers(conversion) if conversion.pages_done else set()
        pages = (
            page
            for page in iter_pages(document, settings.RENDER_DPI, settings.MAX_PAGE_CONTENT_MB, selection)
            if job_page_of[page.number] not in done
        )
        writer = PageWriter(conversion, staging, stem, job_page_of)
        PageRunner(conversion, engine, writer, limits).run(pages)
        if (conversion.pages_total or 0) > 1:  # a one-page job goes from its page to its end
            services.record_finalizing(conversion=conversion)
        stored = writer.every_page(len(selection))
        prefix, size = publish_outputs(conversion, staging, stem, document, stored)
    try:
        services.complete_conversion(
            conversion=conversion,
            output_dir=prefix,
            output_bytes=size,
            failed=None if stored is None else partial.failed_pages_in(stored),
        )
    except LostClaim:
        storage.delete_prefix(prefix)  # superseded: what this attempt uploaded is never shown
        raise
    after_publishing(conversion, prefix, stem)


@contextmanager
def opened_input(conversion: Conversion) -> Iterator[pymupdf.Document]:
    """The document as a PDF open for reading: the stored file streamed to a local
    temporary copy (the file itself on the local backend), repaired if MuPDF cannot read
    it; an image or Office file converted in a scratch folder of the worker
    (workers/inputs). Everything local is removed when the job is done with it. A cancel
    or a shutdown stops LibreOffice within a second. Raises InvalidPdf, InvalidInput."""
    document = conversion.document
    input_type = inputs.type_for(document.content_type)
    with storage.local_copy(document.stored_path) as source:
        if input_type.kind == "pdf":
            # No scratch folder for a PDF: only a repair (rare) writes a file, this one.
            target = settings.DATA_DIR / "tmp" / f"repaired-{uuid.uuid4().hex}.pdf"
            try:
                with open_or_repair(conversion, source, target) as opened:
                    yield opened
            finally:
                target.unlink(missing_ok=True)
            return
        with tempfile.TemporaryDirectory(dir=settings.DATA_DIR / "tmp", prefix="input-") as scratch:
            office = inputs.OfficeOptions(
                soffice=settings.SOFFICE_BINARY,
                timeout_seconds=settings.OFFICE_TIMEOUT_SECONDS,
                interrupt=lambda: stop_if_asked(conversion),
            )
            converted = inputs.to_pdf(
                source,
                input_type,
                Path(scratch),
                dpi=settings.RENDER_DPI,
                max_pixels=settings.MAX_IMAGE_PIXELS,
                office=office,
            )
            with open_pdf(converted) as opened:
                yield opened


@contextmanager
def open_or_repair(conversion: Conversion, source: Path, target: Path) -> Iterator[pymupdf.Document]:
    """``source`` open, or its repair (written to ``target``, which the caller removes,
    and stored beside the upload as ``uploads/<name>.repaired.pdf``) when MuPDF cannot
    read it: stored before repairs were made at upload, or damaged in storage since. A
    repaired file is not repaired again."""
    document = conversion.document
    if document.repaired:
        with open_pdf(source) as opened:
            yield opened
        return
    with repair.open_or_repair(source, target) as (opened, outcome):
        if outcome is not None:
            key = storage.repaired_key(document.stored_path)
            storage.put_file(key, target)
            services.record_document_repair(
                document=document, repaired_path=key, repair=outcome, page_count=outcome.pages
            )
            logger.info("conversion=%s document repaired: %s", conversion.pk, outcome.note)
        yield opened


def stop_if_asked(conversion: Conversion) -> None:
    if shutdown.requested.is_set():
        raise shutdown.ShuttingDown()
    if selectors.cancel_requested(conversion):
        raise Cancelled()


def record_page_count(conversion: Conversion, page_count: int) -> list[int]:
    """Record the pages of the (converted) PDF, whose count an Office document first has
    here, and return the document's pages (0-based) this job converts, in order. The
    selection is checked again here: an Office document's could not be checked at submit.
    Raises InvalidInput past MAX_PAGES, PageRangeError for a selection past its end."""
    if page_count > settings.MAX_PAGES:
        raise inputs.InvalidInput(f"The converted document has {page_count} pages; the limit is {settings.MAX_PAGES}.")
    selection = page_ranges.selected_pages(conversion.page_selection, page_count)
    services.record_document_pages(document=conversion.document, page_count=page_count)
    if not loaded_is_news(conversion, len(selection)):
        # A one-page job recorded at submit as one page: this write would tell nobody
        # anything (it sends no event), and its page's checkpoint, a moment later, sets
        # progress and message; if the job fails first, its failure records the progress
        # reached (services.fail_conversion). The first cancel check then uses the flag
        # the claim returned, an instant ago.
        conversion.progress = max(conversion.progress, services.LOADED_PROGRESS)
        return selection
    services.record_pdf_loaded(conversion=conversion, pages_total=len(selection), page_count=page_count)
    conversion.pages_total = len(selection)
    return selection


def loaded_is_news(conversion: Conversion, pages_total: int) -> bool:
    """Whether ``services.record_pdf_loaded`` has something to record: a page count not
    known at submit (Office, images, a changed file), more than one page (its event starts
    the progress bar), or a repair to report."""
    return pages_total != 1 or conversion.pages_total != 1 or conversion.document.repaired


def dotsocr_config_for(engine_name: str) -> DotsOcrConfig | None:
    """dots.ocr's configuration (from ``settings.DOTSOCR``) when this job may use it: asked
    for by name, or `auto` with a server configured."""
    if engine_name == "dotsocr" or (engine_name == "auto" and settings.DOTSOCR_CONFIGURED):
        return DotsOcrConfig(**settings.DOTSOCR)
    return None


def publish_outputs(
    conversion: Conversion,
    staging: Path,
    stem: str,
    document: pymupdf.Document,
    stored: list[PageResult] | None = None,
) -> tuple[str, int]:
    """Write the document files from the checkpoints (``stored``: every page's row in
    page order, in hand; else read from the database) into the local staging folder and upload it to
    storage under this attempt's prefix (``outputs/<id>/<attempt>``), which is returned
    with the bytes uploaded: nothing shows it until the conversion completes with it as
    output_dir. The local folder is removed either way. ``document``: the job's PDF,
    open, for the page images an earlier attempt made elsewhere."""
    results = selectors.page_results(conversion) if stored is None else stored
    pages = [
        outputs.PageOutput(
            page_no=result.page_no,
            cells=[outputs.cell_in_order(cell) for cell in result.cells],
            markdown=result.markdown,
            markdown_nohf=result.markdown_nohf,
            engine=result.engine,
            source_page=result.source_page,
            engine_reason=result.engine_reason,
            status=result.status,
            error=result.error,
        )
        for result in results
    ]
    assert conversion.pages_total is not None  # recorded when the document was loaded (record_page_count)
    missing = set(range(conversion.pages_total)) - {page.page_no for page in pages}
    if missing:
        raise EngineError(f"Pages without a result: {', '.join(str(n + 1) for n in sorted(missing))}.")
    ensure_page_images(document, staging, stem, pages)
    attempt = f"{conversion.attempts}-{uuid.uuid4().hex[:12]}"
    prefix = storage.attempt_prefix(conversion.pk, attempt)
    try:
        outputs.complete_folder(staging, stem, pages)
        size = storage.put_folder(prefix, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return prefix, size


def after_publishing(conversion: Conversion, prefix: str, stem: str) -> None:
    """Once completed: remove what earlier attempts of the conversion (crashed, or
    superseded) uploaded, and on the local filesystem point the original app's
    ``DATA_DIR/output/<stem>`` links at the outputs."""
    published = prefix.rsplit("/", 1)[-1]
    for attempt in storage.subprefixes(storage.conversion_prefix(conversion.pk)):
        if attempt != published:
            storage.delete_prefix(storage.attempt_prefix(conversion.pk, attempt))
    if storage.is_local():
        outputs.link_latest(settings.OUTPUT_BY_STEM_DIR, stem, storage.local_path(prefix))


def ensure_page_images(document: pymupdf.Document, staging: Path, stem: str, pages: list[outputs.PageOutput]) -> None:
    """Re-render the images of pages checkpointed by an earlier attempt (on another host,
    or before a crash): the staging folder may not have them."""
    for result in pages:
        if (staging / f"{outputs.page_name(stem, result.page_no)}.jpg").exists():
            continue
        with PYMUPDF_LOCK:
            page = PdfPage(
                page=document[outputs.source_page_of(result.page_no, result.source_page) - 1], dpi=settings.RENDER_DPI
            )
        pictures = picture_crops(page, outputs.cells_from_dicts(result.cells))
        outputs.write_page_images(staging, stem, result.page_no, page.jpeg(), pictures)
