"""A job's pages: read by the engine in a thread pool, several at once when it can take
them, each checkpointed in the job's thread as it ends (``PageRunner``), under the limits
of a page and of a job, stopping at a page boundary for a cancel or a shutdown.

``PageWriter`` writes a finished page: its images to the attempt's local staging folder,
then its row and the job's progress in one statement (``services.checkpoint_page``).
"""

import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connections

from conversions import partial, selectors, services
from conversions.models import Conversion, PageResult
from workers import outputs, shutdown
from workers.ocr import EngineError
from workers.ocr.base import PageOcr
from workers.ocr.layout import cells_to_markdown
from workers.ocr.trust import explain_empty
from workers.pdf import PdfPage

logger = logging.getLogger(__name__)


class Cancelled(Exception):
    """The user asked to cancel; the worker stops at the next page boundary."""


class JobTimedOut(Exception):
    """The job ran past JOB_TIMEOUT_SECONDS; it fails with that reason."""


class PageTimedOut(Exception):
    """One page ran past PAGE_TIMEOUT_SECONDS; the job fails naming the page."""


@dataclass(frozen=True)
class Limits:
    page_seconds: float
    job_seconds: float
    shutdown_grace_seconds: float
    job_deadline: float  # time.monotonic() value
    cancel_grace_seconds: float = 3.0
    # How often a worker waiting on a page looks for a cancel or a stop request.
    poll_seconds: float = 0.5

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(
            page_seconds=settings.PAGE_TIMEOUT_SECONDS,
            job_seconds=settings.JOB_TIMEOUT_SECONDS,
            shutdown_grace_seconds=settings.SHUTDOWN_GRACE_SECONDS,
            job_deadline=time.monotonic() + settings.JOB_TIMEOUT_SECONDS,
        )


class PageRunner:
    """OCR pages in a thread pool, several at once when the engine can take them (a vLLM
    server batches concurrent requests), checkpointing each in this thread as it ends.

    Recognition always runs off this thread so this one can keep watch: it stops for a
    cancel, a shutdown or the job's time limit between pages, and fails a page that runs
    past its limit instead of waiting for it forever.
    """

    def __init__(self, conversion: Conversion, engine, writer: "PageWriter", limits: Limits):
        self.conversion, self.engine, self.writer, self.limits = conversion, engine, writer, limits
        self.width = max(1, min(settings.NUM_THREAD, getattr(engine, "max_concurrency", 1)))
        self.in_flight: dict[Future, tuple[PdfPage, float]] = {}
        self.first_check = True  # the claim or services.record_pdf_loaded has just returned the cancel flag

    def run(self, pages) -> None:
        pool = page_pool(self.width)
        try:
            for page in pages:
                self.check_interruptions()
                future = pool.submit(recognize, self.engine, page, self.conversion.prompt_mode)
                self.in_flight[future] = (page, time.monotonic())
                while len(self.in_flight) >= self.width:
                    self.checkpoint_finished()
            while self.in_flight:
                self.checkpoint_finished()
            # Asked while the last page ran: the flag its checkpoint returned says (that
            # write was the last moment), or the row when this attempt wrote no page.
            if (
                self.conversion.cancel_requested
                if self.writer.pages_written
                else selectors.cancel_requested(self.conversion)
            ):
                raise Cancelled()
        except shutdown.ShuttingDown:
            self.finish_in_flight(self.limits.shutdown_grace_seconds)
            raise
        except Cancelled:
            # The page being read may finish (briefly), so no request is sent after the
            # job shows `cancelled`; a slow one is left behind.
            self.finish_in_flight(self.limits.cancel_grace_seconds)
            raise
        finally:
            if self.in_flight:
                # Never wait for an abandoned page here: it may be the one that is stuck.
                # Its thread is not handed to the next job either.
                discard_page_pool()

    def checkpoint_finished(self) -> None:
        finished, _ = wait(self.in_flight, timeout=self.limits.poll_seconds, return_when=FIRST_COMPLETED)
        for future in finished:
            page, _ = self.in_flight.pop(future)
            try:
                recognized = future.result()
            except EngineError as error:
                if self.conversion.on_page_error != "skip":
                    raise
                self.writer.skip(page, str(error))  # partial success: recorded, the job goes on
                continue
            self.writer.checkpoint(page, recognized)
        if not finished:
            self.fail_overdue_page()
        # Also while the last pages drain: a cancel must not wait for all of them.
        if self.in_flight:
            self.check_interruptions()

    def check_interruptions(self) -> None:
        if shutdown.requested.is_set():
            raise shutdown.ShuttingDown()
        if self.cancel_asked():
            raise Cancelled()
        if time.monotonic() > self.limits.job_deadline:
            raise JobTimedOut(
                f"The conversion took longer than its limit of {self.limits.job_seconds:g} s "
                f"(JOB_TIMEOUT_SECONDS); {self.writer.pages_written} pages were done in this attempt."
            )

    def cancel_asked(self) -> bool:
        """Whether a cancel was asked: before the first page, the flag the PDF-loaded write
        (or, for a one-page job that skips it, the claim) has just returned; later, read
        from the row."""
        if self.first_check:
            self.first_check = False
            return self.conversion.cancel_requested
        return selectors.cancel_requested(self.conversion)

    def fail_overdue_page(self) -> None:
        now = time.monotonic()
        for page, started in self.in_flight.values():
            if now - started > self.limits.page_seconds:
                raise PageTimedOut(
                    f"Page {page.number + 1} did not finish within {self.limits.page_seconds:g} s "
                    "(PAGE_TIMEOUT_SECONDS)."
                )

    def finish_in_flight(self, timeout: float) -> None:
        """Checkpoint the pages already being recognised, waiting for them a bounded time:
        a resumed job starts after them instead of doing them again."""
        finished, _ = wait(self.in_flight, timeout=timeout)
        for future in finished:
            page, _ = self.in_flight.pop(future)
            if future.exception() is None:
                self.writer.checkpoint(page, future.result())


_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] | None = None  # (process id, width)


def page_pool(width: int) -> ThreadPoolExecutor:
    """This worker process's page threads, ``width`` of them, kept from job to job: a job
    does not pay a thread start and its wait (most jobs are a page or two). Made anew in
    a forked child, for another width, or after ``discard_page_pool``."""
    global _pool, _pool_key
    if _pool is None or _pool_key != (os.getpid(), width):
        _pool, _pool_key = ThreadPoolExecutor(max_workers=width, thread_name_prefix="ocr"), (os.getpid(), width)
    return _pool


def discard_page_pool() -> None:
    """Leave the pool to the pages still running in it (a cancel, a stop, a timeout or an
    error left them behind) and let the next job start a new one: a stuck page's thread
    must not hold up another job's pages."""
    global _pool, _pool_key
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
    _pool, _pool_key = None, None


@dataclass(frozen=True)
class RecognizedPage:
    """What an engine read of one page, and how long it took."""

    result: PageOcr
    duration_ms: int


def recognize(engine, page: PdfPage, prompt_mode: str) -> RecognizedPage:
    """The engine's result for a page and how long it took (ms); errors name the page. A
    page without text says whether it is blank or unreadable (never an empty success)."""
    started = time.monotonic()
    try:
        result = explain_empty(page, engine.recognize(page, prompt_mode=prompt_mode))
    except EngineError as error:
        raise EngineError(f"Page {page.number + 1}: {error}") from error
    finally:
        # Page threads outlive the job (page_pool): one that an engine made query the
        # database (a test's stand-in) must not keep a connection open between pages.
        # Nearly free when none was opened: only this thread's connections are looked at.
        connections.close_all()
    return RecognizedPage(result=result, duration_ms=int((time.monotonic() - started) * 1000))


class PageWriter:
    """Writes a finished page: its images to the staging folder, then its checkpoint.

    The rows it stored are kept (``stored``) for the job's outputs, which then need no
    read back, up to ``KEEP_MAX_PAGES`` pages; ``stored`` is None once a page was not
    stored by this writer (another attempt had checkpointed it) or past that bound."""

    KEEP_MAX_PAGES = 100  # past this, the outputs read the rows back: memory stays bounded

    def __init__(self, conversion: Conversion, staging: Path, stem: str, job_page_of: dict[int, int] | None = None):
        self.conversion, self.staging, self.stem = conversion, staging, stem
        self.job_page_of = job_page_of or {}  # document page (0-based) -> job page, with a selection
        self.pages_written = 0
        self.stored: list[PageResult] | None = []

    def keep(self, stored: PageResult | None) -> None:
        if self.stored is None:
            return
        if stored is None or len(self.stored) >= self.KEEP_MAX_PAGES:
            self.stored = None
        else:
            self.stored.append(stored)

    def every_page(self, pages_total: int) -> list[PageResult] | None:
        """Every page's row in page order, when this writer stored all ``pages_total`` of
        them (the outputs then need no read back); else None."""
        if self.stored is None or len(self.stored) != pages_total:
            return None
        return sorted(self.stored, key=lambda row: row.page_no)

    def checkpoint(self, page: PdfPage, recognized: RecognizedPage) -> None:
        result, duration_ms = recognized.result, recognized.duration_ms
        page_no = self.job_page_of.get(page.number, page.number)
        outputs.write_page_images(self.staging, self.stem, page_no, page.jpeg(), picture_crops(page, result.cells))

        def picture_link(index, cell):
            return outputs.picture_name(self.stem, page_no, index)

        stored = services.checkpoint_page(
            conversion=self.conversion,
            page_no=page_no,
            source_page=page.number + 1,
            page=result,
            markdown=cells_to_markdown(result.cells, picture_link=picture_link),
            markdown_nohf=cells_to_markdown(result.cells, picture_link=picture_link, drop_headers_footers=True),
            duration_ms=duration_ms,
        )
        self.keep(stored)
        self.pages_written += 1
        logger.info(
            "conversion=%s page=%s engine=%s cells=%s ms=%s",
            self.conversion.pk,
            page.number,
            result.engine,
            len(result.cells),
            duration_ms,
        )

    def skip(self, page: PdfPage, reason: str) -> None:
        """Checkpoint a page the engine could not read as failed, its Markdown a visible
        notice (conversions/partial.py); its page image is kept like any page's."""
        page_no = self.job_page_of.get(page.number, page.number)
        outputs.write_page_images(self.staging, self.stem, page_no, page.jpeg(), {})
        notice = partial.failure_markdown(page.number + 1, reason)
        stored = services.checkpoint_page(
            conversion=self.conversion,
            page_no=page_no,
            source_page=page.number + 1,
            page=PageOcr(cells=[], engine=partial.SKIPPED_ENGINE, reason="skipped: " + reason, error=reason),
            markdown=notice,
            markdown_nohf=notice,
            duration_ms=0,
        )
        self.keep(stored)
        self.pages_written += 1
        logger.warning("conversion=%s page=%s skipped reason=%r", self.conversion.pk, page.number, reason)


def has_area(bbox) -> bool:
    x1, y1, x2, y2 = bbox
    return x2 > x1 and y2 > y1


def picture_crops(page: PdfPage, cells) -> dict[int, bytes]:
    return {
        index: page.crop_jpeg(cell.bbox)
        for index, cell in enumerate(cells)
        if cell.category == "Picture" and has_area(cell.bbox)
    }
