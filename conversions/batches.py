"""Writes for batches: several documents submitted together, one conversion each.

The documents are stored (and URLs downloaded) first, each checked as a single upload
is; then the batch and all its conversions are created in one transaction. Anything
wrong with one item refuses the whole batch, naming the item, and leaves nothing
behind: no batch, no conversion, no stored file.
"""

from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction

from conversions import services, storage, webhooks
from conversions.exceptions import DomainError, InvalidRequest
from conversions.models import Batch, Document


@dataclass(frozen=True)
class BatchOptions:
    """What every conversion of the batch gets."""

    engine: str
    prompt_mode: str = "prompt_layout_all_en"
    priority: int = 0
    pages: str = ""
    on_page_error: str = "fail"
    callback_url: str = ""  # checked by submit_batch (conversions/webhooks.py)


def submit_batch(
    *,
    owner,
    uploads: list,
    source_urls: list[str],
    options: BatchOptions,
    max_queued: int = 0,
    max_items: int | None = None,
) -> Batch:
    """A batch with one queued conversion per upload and per URL, in that order.

    Raises InvalidRequest for an empty or oversized batch, QueueFull when the owner's
    waiting jobs plus this batch pass ``max_queued`` (0: no cap), and the error of the
    first item that fails (not a PDF, too large, a URL that cannot be fetched, pages out
    of range), its message prefixed with the item's name.
    """
    count = len(uploads) + len(source_urls)
    max_items = settings.MAX_BATCH_FILES if max_items is None else max_items
    if count == 0:
        raise InvalidRequest("A batch needs at least one 'file' or 'source_url'.")
    if count > max_items:
        raise InvalidRequest(f"The batch has {count} documents; the limit is {max_items} (MAX_BATCH_FILES).")
    services.ensure_queue_room(owner=owner, max_queued=max_queued, adding=count)  # before storing anything
    webhooks.checked_callback_url(options.callback_url)
    documents: list[Document] = []
    try:
        for upload in uploads:
            documents.append(
                named(
                    upload.name,
                    partial(services.create_document, owner=owner, upload=upload, max_pages=settings.MAX_PAGES),
                )
            )
        for url in source_urls:
            documents.append(
                named(
                    url,
                    partial(
                        services.create_document_from_url, owner=owner, source_url=url, max_pages=settings.MAX_PAGES
                    ),
                )
            )
        return queue_batch(owner=owner, documents=documents, options=options, max_queued=max_queued)
    except BaseException:
        discard(documents)
        raise


def named(name: str, make):
    """``make()``, its domain error naming the batch item it came from."""
    try:
        return make()
    except DomainError as error:
        raise type(error)(f"{name}: {error.detail}") from None


@transaction.atomic
def queue_batch(*, owner, documents: list[Document], options: BatchOptions, max_queued: int) -> Batch:
    """The batch and a conversion per document, all or nothing."""
    if max_queued:
        services.lock_owner(owner)
        services.ensure_queue_room(owner=owner, max_queued=max_queued, adding=len(documents))
    batch = Batch.objects.create(owner=owner)
    for number, document in enumerate(documents, start=1):
        # Nobody can follow these new ids yet; the queue's watchers need one event, not one per file.
        named(
            document.filename,
            partial(
                services.create_conversion,
                document=document,
                owner=owner,
                batch=batch,
                engine=options.engine,
                prompt_mode=options.prompt_mode,
                priority=options.priority,
                pages=options.pages,
                announce=number == len(documents),
                on_page_error=options.on_page_error,
                callback_url=options.callback_url,
            ),
        )
    return batch


def discard(documents: list[Document]) -> None:
    """Remove what a refused batch stored: its documents' rows and files."""
    Document.objects.filter(pk__in=[document.pk for document in documents]).delete()
    for document in documents:
        storage.delete(document.stored_path)
