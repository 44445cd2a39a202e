"""A running job: its writes (page count, checkpoints, finalizing) and its end (completed,
failed, cancelled), only while this worker owns it."""

import logging

from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from conversions import checkpoints, partial, progress
from conversions.exceptions import LostClaim
from conversions.models import Conversion, PageResult
from conversions.returning import update_returning
from conversions.services.transitions import RUNNING_STATE, _finish
from workers.ocr.base import PageOcr

logger = logging.getLogger(__name__)
Status = Conversion.Status
LOADED_PROGRESS = 10  # a job's progress once its PDF is open, as in the original app


def _update_running(conversion: Conversion, *, page_no: int | None = None, announce: bool = True, **fields) -> None:
    """Write fields of a job this worker owns; raises LostClaim if it no longer does.
    ``conversion`` takes the written values, and its progress event is built from them
    (``announce`` False: no event)."""
    rows = Conversion.objects.filter(pk=conversion.pk, status=Status.RUNNING, worker_id=conversion.worker_id)
    now = timezone.now()
    state = update_returning(
        rows, RUNNING_STATE, heartbeat_at=now, updated_at=now, event_seq=F("event_seq") + 1, **fields
    )
    if state is None:
        raise LostClaim(f"Conversion {conversion.pk} is no longer running on {conversion.worker_id}.")
    for name, value in state.items():
        setattr(conversion, name, value)
    if announce:
        progress.send_state_after_commit(conversion, page_no=page_no)


def _progress(value: int):
    """Progress never goes backwards, whatever order updates arrive in."""
    return Greatest(F("progress"), value)


def record_pdf_loaded(*, conversion: Conversion, pages_total: int, page_count: int | None = None) -> None:
    """``pages_total``: the pages this job converts; ``page_count``: the document's, when
    only some were selected."""
    message = f"PDF loaded with {pages_total} pages"
    if page_count is not None and page_count != pages_total:
        message = f"PDF loaded: converting {pages_total} of its {page_count} pages"
    if conversion.document.repaired:
        message += f" (repaired: {conversion.document.repair_note})"
    # A one-page job's events are its start, its page and its end: this step adds no news
    # to a client of such a job unless its document was repaired.
    _update_running(
        conversion,
        pages_total=pages_total,
        progress=_progress(LOADED_PROGRESS),
        message=message[:500],
        announce=pages_total > 1 or conversion.document.repaired,
    )


def checkpoint_page(
    *,
    conversion: Conversion,
    page_no: int,
    page: PageOcr,
    markdown: str,
    markdown_nohf: str,
    duration_ms: int,
    source_page: int | None = None,
) -> PageResult | None:
    """Store one finished page and the job's progress together (the resume point).
    ``page_no`` numbers the job's pages from 0; ``source_page`` is the document's page it
    was read from, 1-based (default ``page_no + 1``). Returns the row as stored (unsaved
    instance, no pk), or None when another attempt had checkpointed the page first (its
    result is kept). Raises LostClaim if the job is no longer this worker's."""
    result = PageResult(
        conversion=conversion,
        page_no=page_no,
        source_page=page_no + 1 if source_page is None else source_page,
        cells=[without_nul_in_cell(cell.as_dict()) for cell in page.cells],
        markdown=without_nul(markdown),
        markdown_nohf=without_nul(markdown_nohf),
        engine=page.engine,
        engine_reason=without_nul(page.reason),
        # A page that shows ink but could not be read is recorded, never an empty success.
        status=PageResult.Status.FAILED if page.error else PageResult.Status.DONE,
        error=without_nul(page.error),
        duration_ms=duration_ms,
    )
    # One statement (conversions/checkpoints.py): the page row and the job's count of
    # them (pages_done + 1, so no count of the rows) commit together, only while the job
    # is ours. A page another attempt already checkpointed keeps its first result.
    state, added = checkpoints.checkpoint(
        conversion, result, total=conversion.pages_total or 1, now=timezone.now(), returning=RUNNING_STATE
    )
    if state is None:
        raise LostClaim(f"Conversion {conversion.pk} is no longer running on {conversion.worker_id}.")
    if not added:
        logger.info("page already checkpointed conversion=%s page=%s", conversion.pk, page_no)
    for name, value in state.items():
        setattr(conversion, name, value)
    progress.send_state_after_commit(conversion, page_no=page_no)
    return result if added else None


def without_nul(text: str) -> str:
    """PostgreSQL text cannot hold NUL, which PDF text layers and model answers can carry."""
    return text.replace("\x00", "")


def without_nul_in_cell(cell: dict) -> dict:
    return {**cell, "text": without_nul(cell["text"])} if "text" in cell else cell


def record_finalizing(*, conversion: Conversion) -> None:
    _update_running(conversion, progress=_progress(95), message="Finalizing conversion...")


def complete_conversion(
    *,
    conversion: Conversion,
    output_dir: str,
    output_bytes: int | None = None,
    failed: list[partial.FailedPage] | None = None,
) -> None:
    """running -> completed, with the pages that failed (conversions/partial.py) and the
    output's size. ``failed``: the job's failed pages when the caller holds every page's
    result (``partial.failed_pages_in``); else read here. Raises LostClaim if the job was
    taken from this worker."""
    from conversions import retention

    if failed is None:
        failed = partial.failed_pages_of(conversion)  # one query serves the message and the field
    message = partial.skipped_message(conversion, failed) or completion_message(conversion, failed)
    if not _finish(
        conversion,
        Status.COMPLETED,
        progress=100,
        message=message,
        output_dir=output_dir,
        pages_failed=partial.pages_failed_field(failed),
        # Measured by the worker as it uploaded them; else listed from storage.
        output_bytes=retention.folder_bytes(output_dir) if output_bytes is None else output_bytes,
    ):
        raise LostClaim(f"Conversion {conversion.pk} could not be completed: it is no longer running here.")


def completion_message(conversion: Conversion, failed: list[partial.FailedPage]) -> str:
    """ "Conversion completed successfully", or which pages could not be read (``failed``:
    ``partial.failed_pages_of(conversion)``)."""
    unreadable = [page.page_no for page in failed]
    if not unreadable:
        return "Conversion completed successfully"
    numbers = ", ".join(str(page_no + 1) for page_no in unreadable[:20]) + (", ..." if len(unreadable) > 20 else "")
    return (
        f"Conversion completed; {len(unreadable)} of {conversion.pages_total or len(unreadable)} pages "
        f"could not be read ({'page' if len(unreadable) == 1 else 'pages'} {numbers}): "
        "they show ink but no text was found"
    )


def fail_conversion(*, conversion: Conversion, error: str) -> bool:
    """running -> failed with a readable reason, and the progress the job had reached
    (``conversion.progress``, which may be ahead of the row: a one-page job does not
    write its loading step). False if the job was not running here."""
    return _finish(
        conversion,
        Status.FAILED,
        error=error,
        message=f"Conversion failed: {error}"[:500],
        progress=_progress(conversion.progress),
    )


def finish_cancelled(*, conversion: Conversion) -> bool:
    """running -> cancelled, once the worker has stopped at a page boundary."""
    return _finish(conversion, Status.CANCELLED, message="Conversion cancelled")
