"""Every write to documents and conversions (HackSoft style: one function per use case).

The conversion status machine lives here and nowhere else::

    queued -> running -> completed | failed | cancelled
    queued -> cancelled
    running -> queued            (lease expiry, release on shutdown)
    failed | cancelled -> queued (retry)

Each transition is one conditional UPDATE (``... WHERE id = %s AND status IN (...)``), so
two workers can never both own a job and a second delivery of a message is a no-op.
"""

import contextlib
import dataclasses
import hashlib
import logging
import os
import shutil
import socket
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Min, Q
from django.db.models.functions import Greatest
from django.utils import timezone
from django_q.tasks import async_task
from rest_framework.authtoken.models import Token

from conversions import checkpoints, page_selection, sources, webhooks
from conversions.claiming import claim_in_one_statement
from conversions.document_types import inspect_upload
from conversions.exceptions import (
    DocumentTooLarge,
    IdempotencyConflict,
    IllegalTransition,
    InvalidRequest,
    LostClaim,
    NotFound,
    QueueFull,
)
from conversions.markdown_edits import save_markdown_edit  # noqa: F401 (re-exported: services.save_markdown_edit)
from conversions.models import Conversion, Document, PageResult
from conversions.returning import update_returning
from conversions.uploads import commit_upload, discard_upload, store_upload
from workers import progress
from workers.inputs.repair import RepairOutcome
from workers.ocr import ENGINES
from workers.ocr.base import PROMPT_MODES, PageOcr
from workers.outputs import display_name, safe_stem, unlink_dangling

logger = logging.getLogger(__name__)
Status = Conversion.Status

ALLOWED_TRANSITIONS = {
    Status.QUEUED: {Status.RUNNING, Status.CANCELLED},
    Status.RUNNING: {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.QUEUED},
    Status.FAILED: {Status.QUEUED},
    Status.CANCELLED: {Status.QUEUED},
    Status.COMPLETED: set(),
}
# What a running job's writes hand back (UPDATE ... RETURNING): enough for its progress
# event without reading the row again, and whether a cancel was asked for meanwhile.
RUNNING_STATE = (
    "status",
    "progress",
    "message",
    "pages_done",
    "pages_total",
    "event_seq",
    "batch_id",
    "cancel_requested",
)

# What a transition of a job in hand hands back (UPDATE ... RETURNING): the fields any
# transition writes, so the caller's instance matches the row and its event needs no read.
TRANSITION_STATE = RUNNING_STATE + (
    "error",
    "output_dir",
    "worker_id",
    "attempts",
    "max_attempts",
    "started_at",
    "heartbeat_at",
    "finished_at",
    "updated_at",
    "priority",
)
ANONYMOUS_USERNAME = "anonymous"
TASK_FUNCTION = "workers.tasks.wake_worker"


def _transition(
    conversion_id,
    *,
    sources: set[str],
    target: str,
    owned_by: str | None = None,
    where: dict | None = None,
    in_hand: Conversion | None = None,
    **fields,
) -> int:
    """Move a conversion from one of ``sources`` to ``target`` in one conditional UPDATE.

    Returns the number of rows changed (0 or 1). Raises IllegalTransition when the
    machine never allows ``target`` from one of ``sources`` (a programming error).
    ``in_hand``: the caller's instance of that conversion, which then takes the values
    written, and its event is built from them instead of a read of the row.
    """
    for source in sources:
        if target not in ALLOWED_TRANSITIONS[source]:
            raise IllegalTransition(f"A conversion cannot go from {source} to {target}.")
    rows = Conversion.objects.filter(pk=conversion_id, status__in=sources)
    if owned_by is not None:
        rows = rows.filter(worker_id=owned_by)
    if where:
        rows = rows.filter(**where)
    fields = {"status": target, "updated_at": timezone.now(), "event_seq": F("event_seq") + 1, **fields}
    final = target in webhooks.EVENT_TYPES
    # A final state and its webhook event (if any) commit together.
    with transaction.atomic() if final else contextlib.nullcontext():
        if in_hand is None:
            state = None
            changed = rows.update(**fields)
        else:
            state = update_returning(rows, TRANSITION_STATE, **fields)
            changed = int(state is not None)
        if changed and final:
            webhooks.record_final_event(conversion_id, target)
    if not changed:
        return 0
    if state is None:
        progress.publish_after_commit(conversion_id, status_changed=True)
        return changed
    for name, value in state.items():
        setattr(in_hand, name, value)
    progress.publish_state_after_commit(in_hand, status_changed=True)
    return 1


def current_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def default_owner():
    """The built-in user anonymous requests act as (ALLOW_ANONYMOUS) and the CLI queues as."""
    user, created = get_user_model().objects.get_or_create(username=ANONYMOUS_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def acting_user(user):
    """The signed-in user, or the built-in user an anonymous request acts as. Whether
    anonymous requests are let in at all (ALLOW_ANONYMOUS) is decided before, by the view."""
    return user if user is not None and user.is_authenticated else default_owner()


# --- documents -------------------------------------------------------------------------


def create_document(*, owner, upload, max_pages: int) -> Document:
    """Store and validate an upload (PDF, image, Office or text document; the type comes
    from its bytes). A damaged PDF that MuPDF cannot read is repaired (workers/inputs/repair.py)
    and the repair is stored beside the original. Raises InvalidDocument with a readable
    reason (UnsupportedDocumentType for a type we do not convert, DocumentTooLarge past a limit)."""
    stored = store_upload(upload)
    repaired_part = stored.path.with_name(stored.path.name.split(".", 1)[0] + ".repaired.pdf.part")
    original = None
    try:
        facts = inspect_upload(stored.path, name=upload.name or "", max_pages=max_pages, repaired=repaired_part)
        path = commit_upload(stored, facts.suffix)
        if facts.repair:
            original = path
            path = commit_upload(dataclasses.replace(stored, path=repaired_part), ".repaired.pdf")
    except BaseException:
        discard_upload(stored)
        repaired_part.unlink(missing_ok=True)
        raise
    filename = display_name(upload.name)
    try:
        return Document.objects.create(
            owner=owner,
            filename=filename,
            stem=safe_stem(filename),
            stored_path=str(path),
            sha256=stored.sha256,
            size=stored.size,
            page_count=facts.page_count,
            content_type=facts.content_type,
            kind=facts.kind,
            **repair_fields(facts.repair, original),
        )
    except BaseException:
        path.unlink(missing_ok=True)
        if original:
            original.unlink(missing_ok=True)
        raise


def repair_fields(repair: RepairOutcome | None, original: Path | None) -> dict:
    if repair is None:
        return {}
    return {"repaired": True, "repair_note": repair.note, "original_path": str(original)}


def record_document_repair(*, document: Document, repaired_path: Path, repair: RepairOutcome, page_count: int) -> None:
    """A worker repaired a stored file MuPDF could no longer read: the document now
    points at the repair and keeps the file it had as the original."""
    original = Path(document.original_path or document.stored_path)
    fields = {**repair_fields(repair, original), "stored_path": str(repaired_path), "page_count": page_count}
    Document.objects.filter(pk=document.pk).update(**fields)
    for name, value in fields.items():
        setattr(document, name, value)


def record_document_pages(*, document: Document, page_count: int) -> None:
    """The page count of a document known only after conversion (Office), once a worker knows it."""
    if document.page_count != page_count:
        Document.objects.filter(pk=document.pk).update(page_count=page_count)
        document.page_count = page_count


def create_document_from_url(*, owner, source_url: str, max_pages: int) -> Document:
    """Download ``source_url`` (conversions/sources.py: size cap, time limits, at most 5
    redirects, public addresses only unless SOURCE_URL_ALLOW_HOSTS lists the host) and
    store it as an upload would be. Raises InvalidRequest (DocumentTooLarge past
    MAX_UPLOAD_MB) with the reason the download failed, InvalidDocument for its content."""
    policy = sources.SourcePolicy(
        max_bytes=settings.MAX_UPLOAD_MB * 1024 * 1024,
        allow_hosts=tuple(settings.SOURCE_URL_ALLOW_HOSTS),
        connect_timeout=settings.SOURCE_URL_CONNECT_TIMEOUT,
        read_timeout=settings.SOURCE_URL_READ_TIMEOUT,
        total_timeout=settings.SOURCE_URL_TOTAL_TIMEOUT,
    )
    path = Path(settings.FILE_UPLOAD_TEMP_DIR) / f"source-{uuid.uuid4().hex}"
    try:
        fetched = sources.save_to(path, source_url, policy=policy)
    except sources.SourceTooLarge as error:
        raise DocumentTooLarge(str(error)) from None
    except sources.SourceUnavailable as error:
        raise InvalidRequest(f"source_url: {error}") from None
    try:
        with open(path, "rb") as handle:
            document = create_document(owner=owner, upload=File(handle, name=fetched.filename), max_pages=max_pages)
    finally:
        path.unlink(missing_ok=True)
    document.source_url = source_url
    document.save(update_fields=["source_url"])
    return document


# --- conversions: creating and claiming -------------------------------------------------


def submit_conversion(
    *,
    owner,
    upload=None,
    document_id=None,
    source_url: str | None = None,
    pages: str = "",
    priority: int = 0,
    engine: str = "auto",
    prompt_mode: str = "prompt_layout_all_en",
    idempotency_key: str | None = None,
    max_queued: int = 0,
    on_page_error: str = "fail",
    callback_url: str = "",
) -> tuple[Conversion, bool]:
    """Create a conversion of a new upload, a document downloaded from ``source_url`` or
    an uploaded document, of the ``pages`` selected (all when blank): (conversion, created).

    With an Idempotency-Key, a repeated request gets the conversion the first one made
    (created False), however many times it is retried or raced; the same key with a
    different request raises IdempotencyConflict. QueueFull when the owner has
    ``max_queued`` jobs waiting (checked before the upload is stored, and again when the
    job is queued). ``callback_url`` receives the final state (conversions/webhooks.py;
    InvalidRequest, before anything is stored, when it cannot).
    """
    from conversions.selectors import document_for

    callback_url = webhooks.checked_callback_url(callback_url)
    fingerprint = ""
    if idempotency_key is not None:
        fingerprint = request_fingerprint(
            upload=upload,
            document_id=document_id,
            source_url=source_url,
            pages=pages,
            priority=priority,
            engine=engine,
            prompt_mode=prompt_mode,
            on_page_error=on_page_error,
            callback_url=callback_url,
        )
        earlier = Conversion.objects.filter(owner=owner, idempotency_key=idempotency_key).first()
        if earlier is not None:
            return replayed(earlier, fingerprint), False
    new_document = upload is not None or source_url is not None
    if new_document:
        ensure_queue_room(owner=owner, max_queued=max_queued)
    if upload is not None:
        document = create_document(owner=owner, upload=upload, max_pages=settings.MAX_PAGES)
    elif source_url is not None:
        document = create_document_from_url(owner=owner, source_url=source_url, max_pages=settings.MAX_PAGES)
    else:
        document = document_for(owner, document_id)
    try:
        conversion = create_conversion(
            document=document,
            owner=owner,
            pages=pages,
            priority=priority,
            engine=engine,
            prompt_mode=prompt_mode,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
            max_queued=max_queued,
            on_page_error=on_page_error,
            callback_url=callback_url,
        )
    except BaseException as error:
        if new_document:  # no conversion made: the upload it came with goes too
            document.delete()
            Path(document.stored_path).unlink(missing_ok=True)
            if document.original_path:
                Path(document.original_path).unlink(missing_ok=True)
        if isinstance(error, IntegrityError) and idempotency_key is not None:
            # A concurrent request with the same key created it first: answer with that one.
            return replayed(Conversion.objects.get(owner=owner, idempotency_key=idempotency_key), fingerprint), False
        raise
    return conversion, True


def request_fingerprint(
    *,
    upload,
    document_id,
    priority: int,
    engine: str,
    prompt_mode: str,
    source_url: str | None = None,
    pages: str = "",
    on_page_error: str = "fail",
    callback_url: str = "",
) -> str:
    """What a create call asks for: the upload's bytes (or the URL, or the document) and
    the options."""
    digest = hashlib.sha256()
    if upload is not None:
        for chunk in upload.chunks():
            digest.update(chunk)
    elif source_url is not None:
        digest.update(f"source_url:{source_url}".encode())
    else:
        digest.update(f"document:{document_id}".encode())
    digest.update(f"|{priority}|{engine}|{prompt_mode}".encode())
    if pages:
        digest.update(f"|pages:{pages}".encode())
    if on_page_error != "fail":
        digest.update(f"|on_page_error:{on_page_error}".encode())
    if callback_url:
        digest.update(f"|callback_url:{callback_url}".encode())
    return digest.hexdigest()


def replayed(conversion: Conversion, fingerprint: str) -> Conversion:
    if conversion.request_fingerprint != fingerprint:
        raise IdempotencyConflict(
            "This Idempotency-Key was already used for a different request (another file or other options); "
            "use a new key for a new conversion."
        )
    return Conversion.objects.select_related("document").get(pk=conversion.pk)


def ensure_queue_room(*, owner, max_queued: int, adding: int = 1) -> None:
    """Raises QueueFull when ``adding`` more conversions would take ``owner`` past
    ``max_queued`` waiting (0: no cap). Call inside the transaction that queues, after
    ``_lock_owner``."""
    if not max_queued:
        return
    waiting = Conversion.objects.filter(owner=owner, status=Status.QUEUED).count()
    if adding > 1 and waiting + adding > max_queued:
        raise QueueFull(
            f"You have {waiting} conversions waiting to run and this batch adds {adding}; the limit is "
            f"{max_queued} per user. Submit more once some have started, or cancel some."
        )
    if waiting >= max_queued:
        raise QueueFull(
            f"You have {waiting} conversions waiting to run; the limit is {max_queued} per user. "
            "Submit more once some have started, or cancel some."
        )


def _lock_owner(owner) -> None:
    """Serialise one user's queueing, so two requests cannot both take the last place."""
    list(get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True))


lock_owner = _lock_owner  # for conversions/batches.py


@transaction.atomic
def create_conversion(
    *,
    document: Document,
    owner,
    priority: int = 0,
    engine: str = "auto",
    prompt_mode: str = "prompt_layout_all_en",
    idempotency_key: str | None = None,
    request_fingerprint: str = "",
    max_queued: int = 0,
    pages: str = "",
    batch=None,
    announce: bool = True,
    on_page_error: str = "fail",
    callback_url: str = "",
) -> Conversion:
    """Create a queued conversion and its task message in one transaction.

    The ORM broker writes the message through the same connection, so either both rows
    commit or neither does: no job nobody will run, no message without a job. Raises
    QueueFull when the owner has ``max_queued`` jobs waiting already (0: no cap), and
    InvalidPageSelection when ``pages`` ("1-3,7,10-", 1-based) does not fit the document.
    ``announce`` False sends no progress event (a batch sends one for all its jobs).
    ``callback_url`` must have passed ``webhooks.checked_callback_url``.
    """
    if document.expired_at is not None:
        raise InvalidRequest(f"Document {document.pk} expired (RESULT_TTL_HOURS): its file was removed.")
    pages = page_selection.normalized(pages)
    pages_total = page_selection.selected_page_count(document.page_count, pages)
    if max_queued:
        _lock_owner(owner)
        ensure_queue_room(owner=owner, max_queued=max_queued)
    if engine not in ENGINES:
        raise InvalidRequest(f"Unknown engine {engine!r}; choose one of {', '.join(ENGINES)}.")
    if prompt_mode not in PROMPT_MODES:
        raise InvalidRequest(f"Unknown prompt_mode {prompt_mode!r}; choose one of {', '.join(PROMPT_MODES)}.")
    conversion = Conversion.objects.create(
        document=document,
        owner=owner,
        priority=priority,
        engine=engine,
        prompt_mode=prompt_mode,
        pages_total=pages_total,
        page_selection=pages,
        batch=batch,
        callback_url=callback_url,
        message="Queued",
        idempotency_key=idempotency_key,
        request_fingerprint=request_fingerprint,
        on_page_error=on_page_error,
    )
    _enqueue(conversion.pk)
    if announce:
        progress.publish_after_commit(conversion.pk, status_changed=True)
    return conversion


def _enqueue(conversion_id) -> None:
    """Send the task message; its only payload is the conversion id. Call inside the
    transaction that made the job queued."""
    async_task(TASK_FUNCTION, str(conversion_id), task_name=f"conversion-{conversion_id}")


def claim_conversion(*, conversion_id, worker_id: str) -> Conversion | None:
    """Take a queued conversion for this worker; None if it is not queued (any more)."""
    now = timezone.now()
    claimed = _transition(
        conversion_id,
        sources={Status.QUEUED},
        target=Status.RUNNING,
        worker_id=worker_id,
        attempts=F("attempts") + 1,
        started_at=now,
        heartbeat_at=now,
        message="Starting conversion...",
    )
    if not claimed:
        return None
    return Conversion.objects.select_related("document").get(pk=conversion_id)


def claim_next(*, worker_id: str) -> Conversion | None:
    """Take the queued conversion that should run next: highest priority first; at equal
    priority the owner with the fewest running jobs, then the one served least recently
    (fair share: a user with many queued jobs cannot starve one who arrives later); then
    that owner's oldest job.

    django-q2 has no priorities, so a task message is only a wake-up: whichever job it
    named, the worker claims the best queued one. Every queued job has sent a message,
    so there are never fewer messages than queued jobs; a spare one claims nothing.
    SKIP LOCKED lets concurrent workers pick different jobs without waiting.

    Usually one statement does it all (conversions/claiming.py); the loop below is the
    same order step by step, for when the fair owner's next job is being claimed by
    another worker at this very moment.
    """
    claimed = claim_in_one_statement(worker_id=worker_id)
    if claimed is not None:
        progress.publish_state_after_commit(claimed, status_changed=True)
        return claimed
    waiting = Conversion.objects.filter(status=Status.QUEUED).select_for_update(skip_locked=True)
    while True:
        with transaction.atomic():
            best = waiting.order_by("-priority", "created_at").values_list("pk", "priority").first()
            if best is None:
                return None
            conversion_id, priority = best
            conversion_id = _fairest_waiting(waiting, priority=priority) or conversion_id
            claimed = claim_conversion(conversion_id=conversion_id, worker_id=worker_id)
        if claimed is not None:
            return claimed


def _fairest_waiting(waiting, *, priority: int):
    """Of ``waiting`` (queued, lockable) jobs at ``priority``: the oldest of the owner who
    deserves the next turn; None when another worker holds all of them."""
    for owner_id in _owners_by_fair_share(priority=priority):
        oldest = waiting.filter(priority=priority, owner_id=owner_id).order_by("created_at")
        conversion_id = oldest.values_list("pk", flat=True).first()
        if conversion_id is not None:
            return conversion_id
    return None


def _owners_by_fair_share(*, priority: int) -> list:
    """Owners with jobs queued at ``priority``: fewest running jobs first, then the one
    whose last job started longest ago (never: first), then the one waiting longest."""
    queued_here = Q(status=Status.QUEUED, priority=priority)
    owners = (
        Conversion.objects.filter(owner__in=Conversion.objects.filter(queued_here).values("owner"))
        .values("owner")
        .annotate(
            running=Count("pk", filter=Q(status=Status.RUNNING)),
            last_started=Max("started_at"),
            waiting_since=Min("created_at", filter=queued_here),
        )
    )
    never = datetime.min.replace(tzinfo=UTC)

    def turn(row):
        return row["running"], row["last_started"] or never, row["waiting_since"] or never

    return [row["owner"] for row in sorted(owners, key=turn)]


# --- conversions: progress of a running job ---------------------------------------------


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
        progress.publish_state_after_commit(conversion, page_no=page_no)


def _progress(value: int):
    """Progress never goes backwards, whatever order updates arrive in."""
    return Greatest(F("progress"), value)


def record_pdf_loaded(*, conversion: Conversion, pages_total: int, page_count: int | None = None) -> None:
    """``pages_total``: the pages this job converts; ``page_count``: the document's, when
    only some were selected."""
    # Progress values follow the original app: 10 once the PDF is open.
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
        progress=_progress(10),
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
) -> None:
    """Store one finished page and the job's progress together (the resume point).
    ``page_no`` numbers the job's pages from 0; ``source_page`` is the document's page it
    was read from, 1-based (default ``page_no + 1``)."""
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
    progress.publish_state_after_commit(conversion, page_no=page_no)


def without_nul(text: str) -> str:
    """PostgreSQL text cannot hold NUL, which PDF text layers and model answers can carry."""
    return text.replace("\x00", "")


def without_nul_in_cell(cell: dict) -> dict:
    return {**cell, "text": without_nul(cell["text"])} if "text" in cell else cell


def record_finalizing(*, conversion: Conversion) -> None:
    _update_running(conversion, progress=_progress(95), message="Finalizing conversion...")


def _finish(conversion: Conversion, target: str, *, where: dict | None = None, **fields) -> bool:
    """running -> a final state, only by the worker that owns the job (``conversion``
    takes the values written)."""
    return bool(
        _transition(
            conversion.pk,
            sources={Status.RUNNING},
            target=target,
            owned_by=conversion.worker_id,
            where=where,
            in_hand=conversion,
            finished_at=timezone.now(),
            **fields,
        )
    )


def complete_conversion(*, conversion: Conversion, output_dir: str) -> None:
    """running -> completed, with the pages that failed (conversions/partial.py) and the
    output's size. Raises LostClaim if the job was taken from this worker."""
    from conversions import partial, retention

    pages_failed = partial.failed_pages(conversion)
    message = partial.skipped_message(conversion, pages_failed) or completion_message(conversion)
    if not _finish(
        conversion,
        Status.COMPLETED,
        progress=100,
        message=message,
        output_dir=output_dir,
        pages_failed=pages_failed,
        output_bytes=retention.folder_bytes(Path(output_dir)),
    ):
        raise LostClaim(f"Conversion {conversion.pk} could not be completed: it is no longer running here.")


def completion_message(conversion: Conversion) -> str:
    """ "Conversion completed successfully", or which pages could not be read."""
    unreadable = list(
        conversion.pages.filter(status=PageResult.Status.FAILED).order_by("page_no").values_list("page_no", flat=True)
    )
    if not unreadable:
        return "Conversion completed successfully"
    numbers = ", ".join(str(page_no + 1) for page_no in unreadable[:20]) + (", ..." if len(unreadable) > 20 else "")
    return (
        f"Conversion completed; {len(unreadable)} of {conversion.pages_total or len(unreadable)} pages "
        f"could not be read ({'page' if len(unreadable) == 1 else 'pages'} {numbers}): "
        "they show ink but no text was found"
    )


def fail_conversion(*, conversion: Conversion, error: str) -> bool:
    """running -> failed with a readable reason. False if the job was not running here."""
    return _finish(conversion, Status.FAILED, error=error, message=f"Conversion failed: {error}"[:500])


def finish_cancelled(*, conversion: Conversion) -> bool:
    """running -> cancelled, once the worker has stopped at a page boundary."""
    return _finish(conversion, Status.CANCELLED, message="Conversion cancelled")


# --- conversions: requests from users ---------------------------------------------------


def cancel_conversion(*, conversion: Conversion) -> Conversion:
    """Cancel a job: a queued one at once, a running one before its next page.

    Raises IllegalTransition for a job that has already finished.
    """
    if _transition(
        conversion.pk,
        sources={Status.QUEUED},
        target=Status.CANCELLED,
        cancel_requested=True,
        message="Conversion cancelled",
        finished_at=timezone.now(),
    ):
        return Conversion.objects.get(pk=conversion.pk)
    if Conversion.objects.filter(pk=conversion.pk, status=Status.RUNNING).update(
        cancel_requested=True, message="Cancelling...", updated_at=timezone.now(), event_seq=F("event_seq") + 1
    ):
        progress.publish_after_commit(conversion.pk)
        return Conversion.objects.get(pk=conversion.pk)
    current = Conversion.objects.get(pk=conversion.pk)
    raise IllegalTransition(f"Conversion {conversion.pk} is {current.status} and cannot be cancelled.")


def release_conversion(*, conversion: Conversion, message: str = "Waiting to resume") -> bool:
    """running -> queued, keeping checkpointed pages, so a later attempt resumes the job.

    Its task message is sent again with the release, in the same transaction.
    """
    with transaction.atomic():
        released = _transition(
            conversion.pk,
            sources={Status.RUNNING},
            target=Status.QUEUED,
            owned_by=conversion.worker_id,
            worker_id="",
            message=message,
        )
        if released:
            _enqueue(conversion.pk)
    return bool(released)


# --- edits and deletion (the original app's routes) ---------------------------------------


@transaction.atomic
def delete_documents_named(*, user, filename: str) -> list[str]:
    """Delete every upload of that name with its conversions and output files.

    Refused (IllegalTransition) while one of its conversions is running: cancel it first.
    Rows are locked first, so a worker cannot claim a job while it is being deleted.
    """
    from conversions.selectors import documents_for

    documents = list(documents_for(user).filter(filename=filename).select_for_update())
    if not documents:
        raise NotFound(f"File not found: {filename}")
    conversions = list(Conversion.objects.select_for_update().filter(document__in=documents))
    if any(conversion.status == Status.RUNNING for conversion in conversions):
        raise IllegalTransition(f"{filename} is being converted; cancel the conversion first.")
    deleted = [document.stored_path for document in documents]
    deleted += [document.original_path for document in documents if document.original_path]
    deleted += [conversion.output_dir for conversion in conversions if conversion.output_dir]
    paths = [Path(path) for path in deleted]
    Document.objects.filter(pk__in=[document.pk for document in documents]).delete()
    stems = {document.stem for document in documents}
    transaction.on_commit(lambda: remove_outputs(paths, stems))
    return deleted


def remove_outputs(paths: list[Path], stems: set[str]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    for stem in stems:
        unlink_dangling(settings.OUTPUT_BY_STEM_DIR, stem)


# --- leases ---------------------------------------------------------------------------------


def renew_lease(*, conversion: Conversion) -> bool:
    """Heartbeat of a running job; False once this worker no longer owns it."""
    return bool(
        Conversion.objects.filter(pk=conversion.pk, status=Status.RUNNING, worker_id=conversion.worker_id).update(
            heartbeat_at=timezone.now()
        )
    )


def requeue_expired_leases(*, lease_seconds: int) -> dict[str, int]:
    """Give back jobs whose worker stopped renewing its lease (killed, OOM, host lost).

    A job with attempts left goes back to the queue (it resumes after its last
    checkpointed page); one that used them all fails with the reason. Each is one
    conditional UPDATE that also checks the lease is still expired, so a worker that
    comes back in time keeps its job.
    """
    cutoff = timezone.now() - timedelta(seconds=lease_seconds)
    outcome = {"requeued": 0, "failed": 0}
    for conversion in Conversion.objects.filter(status=Status.RUNNING, heartbeat_at__lt=cutoff):
        worker = conversion.worker_id or "unknown worker"
        result = _give_back(
            conversion, reason=f"the worker ({worker}) stopped responding", where={"heartbeat_at__lt": cutoff}
        )
        if result:
            outcome[result] += 1
    if outcome["requeued"] or outcome["failed"]:
        logger.warning("expired leases requeued=%s failed=%s", outcome["requeued"], outcome["failed"])
    return outcome


def requeue_jobs_of_dead_local_workers(*, host: str, is_running) -> dict[str, int]:
    """Give back at once the jobs of this host's worker processes that no longer exist.

    A worker killed by SIGKILL or the OOM killer leaves its job `running`; the lease
    reaper would give it back after LEASE_SECONDS. A new worker process on the same
    host (django-q2 replaces the dead one; a restarted cluster starts fresh ones) can
    tell at once: the pid in the job's worker id is gone. ``is_running(pid)`` answers
    that. Worker ids are "<host>:<pid>", so hosts must have distinct names.
    """
    outcome = {"requeued": 0, "failed": 0}
    for conversion in Conversion.objects.filter(status=Status.RUNNING, worker_id__startswith=f"{host}:"):
        pid = conversion.worker_id.rsplit(":", 1)[1]
        if not pid.isdigit() or is_running(int(pid)):
            continue
        result = _give_back(
            conversion, reason=f"its worker ({conversion.worker_id}) died", where={"worker_id": conversion.worker_id}
        )
        if result:
            outcome[result] += 1
    if outcome["requeued"] or outcome["failed"]:
        logger.warning("jobs of dead workers requeued=%s failed=%s", outcome["requeued"], outcome["failed"])
    return outcome


def _give_back(conversion: Conversion, *, reason: str, where: dict) -> str | None:
    """A running job whose worker is gone: back to the queue, or failed once it used its
    attempts. None if it changed meanwhile (``where`` no longer holds)."""
    with transaction.atomic():
        if conversion.attempts >= conversion.max_attempts:
            error = f"Gave up after {conversion.attempts} attempts: {reason}."
            if _finish(conversion, Status.FAILED, where=where, error=error, message=f"Conversion failed: {error}"):
                return "failed"
        elif _transition(
            conversion.pk,
            sources={Status.RUNNING},
            target=Status.QUEUED,
            owned_by=conversion.worker_id,
            where=where,
            worker_id="",
            message=f"Requeued: {reason}",
        ):
            _enqueue(conversion.pk)
            return "requeued"
    return None


def wake_stranded_jobs() -> int:
    """Send wake-up messages for queued jobs that have none waiting.

    Every path that queues a job sends one in the same transaction, but a message can
    still be spent without a claim: a worker killed between taking it and claiming, or
    one stopped before it started. Such a message comes back only after Q_CLUSTER
    `retry` (hours). Run from the reaper, this bounds that wait to a minute. Messages
    are only wake-ups, so a spare one is harmless (it claims nothing).
    """
    from django_q.models import OrmQ

    waiting = OrmQ.objects.filter(key=settings.Q_CLUSTER["name"], lock__lte=timezone.now()).count()
    queued = Conversion.objects.filter(status=Status.QUEUED).count()
    missing = min(queued - waiting, settings.NUM_WORKERS * 4)  # enough to wake every worker
    for _ in range(max(0, missing)):
        async_task(TASK_FUNCTION, "wake-up", task_name="wake-up")
    if missing > 0:
        logger.warning("queued=%s waiting messages=%s: sent %s wake-ups", queued, waiting, missing)
    return max(0, missing)


def retry_conversion(*, conversion: Conversion, max_queued: int = 0) -> Conversion:
    """failed | cancelled -> queued, keeping the pages already checkpointed (the retry
    resumes after them). Raises IllegalTransition for a job in another state, QueueFull
    when its owner has ``max_queued`` jobs waiting already (0: no cap)."""
    if conversion.expired_at is not None:
        raise IllegalTransition(f"Conversion {conversion.pk} expired (RESULT_TTL_HOURS): its files were removed.")
    with transaction.atomic():
        if max_queued and conversion.status in (Status.FAILED, Status.CANCELLED):
            _lock_owner(conversion.owner)
            ensure_queue_room(owner=conversion.owner, max_queued=max_queued)
        if not _transition(
            conversion.pk,
            sources={Status.FAILED, Status.CANCELLED},
            target=Status.QUEUED,
            worker_id="",
            error="",
            cancel_requested=False,
            finished_at=None,
            max_attempts=F("attempts") + F("max_attempts"),  # a fresh allowance of attempts
            message="Queued again",
        ):
            current = Conversion.objects.get(pk=conversion.pk)
            raise IllegalTransition(
                f"Conversion {conversion.pk} is {current.status}; only failed or cancelled conversions can be retried."
            )
        _enqueue(conversion.pk)
    return Conversion.objects.select_related("document").get(pk=conversion.pk)


def set_priority(*, conversion: Conversion, priority: int) -> Conversion:
    """Re-prioritise a job that has not finished (it matters while it waits)."""
    changed = Conversion.objects.filter(pk=conversion.pk, status__in=[Status.QUEUED, Status.RUNNING]).update(
        priority=priority, updated_at=timezone.now(), event_seq=F("event_seq") + 1
    )
    if not changed:
        current = Conversion.objects.get(pk=conversion.pk)
        raise IllegalTransition(f"Conversion {conversion.pk} is {current.status}; its priority can no longer change.")
    progress.publish_after_commit(conversion.pk)
    return Conversion.objects.select_related("document").get(pk=conversion.pk)


# --- API tokens -------------------------------------------------------------------------


def issue_api_token(*, user, reset: bool = False) -> str:
    """The user's API token, created when missing; ``reset`` replaces an existing one."""
    with transaction.atomic():
        if reset:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
    return token.key


def revoke_api_token(*, user) -> bool:
    """Delete the user's API token; False when there was none."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)
