"""One conversion, start to finish: claim -> open PDF -> pages -> outputs -> completed.

Each page is checkpointed as a PageResult in its own transaction before the next starts,
so a job that is run again resumes after its last finished page.
"""

import logging
import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from django.conf import settings
from django.db import connection

from conversions import selectors, services
from conversions.exceptions import LostClaim
from conversions.models import Conversion
from workers import outputs
from workers.ocr import EngineError, engine_for
from workers.ocr.base import PageOcr
from workers.ocr.layout import cells_to_markdown
from workers.pdf import InvalidPdf, PdfPage, iter_pages, open_pdf

logger = logging.getLogger(__name__)


class Cancelled(Exception):
    """The user asked to cancel; the worker stops at the next page boundary."""


class Heartbeat:
    """Renews a running job's lease from a side thread: one page can take minutes, and a
    job whose lease expires is given to another worker by the reaper."""

    def __init__(self, conversion: Conversion, *, interval: float):
        self.conversion, self.interval = conversion, interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.beat, name=f"heartbeat-{conversion.pk}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopped.set()
        self.thread.join()

    def beat(self) -> None:
        try:
            while not self.stopped.wait(self.interval):
                if not services.renew_lease(conversion=self.conversion):
                    return  # no longer ours; the main thread finds out at its next write
        except Exception:
            logger.exception("conversion=%s heartbeat failed", self.conversion.pk)
        finally:
            connection.close()  # this thread's own database connection


def run_conversion(conversion_id: str) -> str:
    """Run the next queued conversion (by priority, then age) to its end.

    The message's id is only a wake-up: see services.claim_next. A no-op when nothing
    is queued (a second delivery, a cancelled job).
    """
    conversion = services.claim_next(worker_id=services.current_worker_id())
    if conversion is None:
        logger.info("conversion=%s woke a worker; nothing queued", conversion_id)
        return "skipped"
    logger.info("conversion=%s claimed worker=%s attempt=%s", conversion.pk, conversion.worker_id, conversion.attempts)
    try:
        with Heartbeat(conversion, interval=settings.LEASE_SECONDS / 4):
            convert(conversion)
    except Cancelled:
        services.finish_cancelled(conversion=conversion)
        logger.info("conversion=%s cancelled", conversion.pk)
        return "cancelled"
    except LostClaim as error:
        logger.warning("conversion=%s %s", conversion.pk, error)
        return "lost"
    except (InvalidPdf, EngineError) as error:
        services.fail_conversion(conversion=conversion, error=str(error))
        logger.info("conversion=%s failed reason=%r", conversion.pk, str(error))
        return "failed"
    except Exception as error:
        logger.exception("conversion=%s crashed", conversion.pk)
        services.fail_conversion(conversion=conversion, error=f"Internal error: {type(error).__name__}: {error}")
        return "failed"
    logger.info("conversion=%s completed", conversion.pk)
    return "completed"


def convert(conversion: Conversion) -> None:
    stem = outputs.safe_stem(conversion.document.filename)
    staging = settings.STAGING_DIR / str(conversion.pk)
    engine = engine_for(conversion.engine, dotsocr=dotsocr_config_for(conversion.engine))
    with open_pdf(Path(conversion.document.stored_path)) as document:
        services.record_pdf_loaded(conversion=conversion, pages_total=document.page_count)
        conversion.pages_total = document.page_count
        done = selectors.checkpointed_page_numbers(conversion)
        pages = (page for page in iter_pages(document, settings.RENDER_DPI) if page.number not in done)
        convert_pages(conversion, engine, pages, PageWriter(conversion, staging, stem))
    services.record_finalizing(conversion=conversion)
    final = publish_outputs(conversion, staging, stem)
    services.complete_conversion(conversion=conversion, output_dir=str(final))


def dotsocr_config_for(engine_name: str):
    """dots.ocr's settings when this job may use it: asked for by name, or `auto` with a
    server configured."""
    if engine_name == "dotsocr" or (engine_name == "auto" and settings.DOTSOCR_CONFIGURED):
        return settings.DOTSOCR
    return None


def convert_pages(conversion: Conversion, engine, pages, writer: "PageWriter") -> None:
    """OCR pages, several at once when the engine can take them (a vLLM server batches
    concurrent requests), checkpointing each in this thread as it finishes."""
    width = min(settings.NUM_THREAD, getattr(engine, "max_concurrency", 1))
    if width <= 1:
        for page in pages:
            stop_if_cancelled(conversion)
            writer.checkpoint(page, recognize(engine, page, conversion.prompt_mode))
        return
    with ThreadPoolExecutor(max_workers=width, thread_name_prefix=f"ocr-{conversion.pk}") as pool:
        in_flight: dict[Future, PdfPage] = {}
        try:
            for page in pages:
                stop_if_cancelled(conversion)
                in_flight[pool.submit(recognize, engine, page, conversion.prompt_mode)] = page
                if len(in_flight) >= width:
                    checkpoint_finished(in_flight, writer)
            while in_flight:
                checkpoint_finished(in_flight, writer)
        finally:
            for future in in_flight:
                future.cancel()


def checkpoint_finished(in_flight: dict, writer: "PageWriter") -> None:
    finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
    for future in finished:
        writer.checkpoint(in_flight.pop(future), future.result())


def stop_if_cancelled(conversion: Conversion) -> None:
    if selectors.cancel_requested(conversion):
        raise Cancelled()


def recognize(engine, page: PdfPage, prompt_mode: str) -> tuple[PageOcr, int]:
    """The engine's result for a page and how long it took (ms); errors name the page."""
    started = time.monotonic()
    try:
        result = engine.recognize(page, prompt_mode=prompt_mode)
    except EngineError as error:
        raise EngineError(f"Page {page.number + 1}: {error}") from error
    return result, int((time.monotonic() - started) * 1000)


class PageWriter:
    """Writes a finished page: its images to the staging folder, then its checkpoint."""

    def __init__(self, conversion: Conversion, staging: Path, stem: str):
        self.conversion, self.staging, self.stem = conversion, staging, stem

    def checkpoint(self, page: PdfPage, recognized: tuple[PageOcr, int]) -> None:
        result, duration_ms = recognized
        outputs.write_page_images(self.staging, self.stem, page.number, page.jpeg(), picture_crops(page, result.cells))

        def picture_link(index, cell):
            return outputs.picture_name(self.stem, page.number, index)

        services.checkpoint_page(
            conversion=self.conversion,
            page_no=page.number,
            page=result,
            markdown=cells_to_markdown(result.cells, picture_link=picture_link),
            markdown_nohf=cells_to_markdown(result.cells, picture_link=picture_link, drop_headers_footers=True),
            duration_ms=duration_ms,
        )
        logger.info("conversion=%s page=%s engine=%s cells=%s ms=%s", self.conversion.pk, page.number,
                    result.engine, len(result.cells), duration_ms)


def has_area(bbox) -> bool:
    x1, y1, x2, y2 = bbox
    return x2 > x1 and y2 > y1


def publish_outputs(conversion: Conversion, staging: Path, stem: str) -> Path:
    """Write the document files from the checkpoints and move them into place at once."""
    pages = [
        outputs.PageOutput(
            page_no=result.page_no,
            cells=result.cells,
            markdown=result.markdown,
            markdown_nohf=result.markdown_nohf,
            engine=result.engine,
        )
        for result in selectors.page_results(conversion)
    ]
    missing = set(range(conversion.pages_total)) - {page.page_no for page in pages}
    if missing:
        raise EngineError(f"Pages without a result: {', '.join(str(n + 1) for n in sorted(missing))}.")
    ensure_page_images(conversion, staging, stem, pages)
    final = settings.OUTPUT_DIR / str(conversion.pk)
    try:
        outputs.publish(staging, final, stem, pages)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    outputs.link_latest(settings.OUTPUT_BY_STEM_DIR, stem, final)
    return final


def ensure_page_images(conversion: Conversion, staging: Path, stem: str, pages: list[outputs.PageOutput]) -> None:
    """Re-render the images of pages checkpointed by an earlier attempt (on another host,
    or before a crash): the staging folder may not have them."""
    absent = [page for page in pages if not (staging / f"{outputs.page_name(stem, page.page_no)}.jpg").exists()]
    if not absent:
        return
    with open_pdf(Path(conversion.document.stored_path)) as document:
        for result in absent:
            page = PdfPage(page=document[result.page_no], dpi=settings.RENDER_DPI)
            pictures = picture_crops(page, outputs.cells_from_dicts(result.cells))
            outputs.write_page_images(staging, stem, result.page_no, page.jpeg(), pictures)


def picture_crops(page: PdfPage, cells) -> dict[int, bytes]:
    return {
        index: page.crop_jpeg(cell.bbox)
        for index, cell in enumerate(cells)
        if cell.category == "Picture" and has_area(cell.bbox)
    }
