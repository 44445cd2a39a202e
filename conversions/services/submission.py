"""Submission: creating queued conversions (with idempotency keys and per-user queue caps)
and their task messages, in one transaction."""

import hashlib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django_q.tasks import async_task

from conversions import page_selection, storage, webhooks
from conversions.exceptions import (
    IdempotencyConflict,
    InvalidRequest,
    QueueFull,
)
from conversions.models import Conversion, Document
from conversions.services.documents import create_document, create_document_from_url
from workers import progress
from workers.ocr import ENGINES
from workers.ocr.base import PROMPT_MODES

Status = Conversion.Status

TASK_FUNCTION = "workers.tasks.wake_worker"


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
            storage.delete(document.stored_path)
            storage.delete(document.original_path)
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
