"""How long results are kept, and deleting them: RESULT_TTL_HOURS expiry, the API's
DELETE of a conversion or a document, and the bytes stored by kind for /metrics.

Expiry removes files and the converted text, never rows: a conversion stays listed with
its status, timings and ``expired_at``, and every route that would serve its files
answers 410 with the time it expired (``ensure_not_expired``). Deletion removes rows and
files. Files go after the transaction commits, so a rollback never leaves a row
pointing at a removed file.
"""

import logging
import shutil
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone

from conversions import storage
from conversions.exceptions import Gone, IllegalTransition
from conversions.models import Conversion, Document, PageResult
from workers.outputs import unlink_dangling

logger = logging.getLogger(__name__)
Status = Conversion.Status
FINISHED = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
UNFINISHED = (Status.QUEUED, Status.RUNNING)
EXPIRE_BATCH = 500  # conversions per transaction: a long backlog never holds one long lock


def ensure_not_expired(conversion: Conversion) -> None:
    """Raises Gone (HTTP 410) when RESULT_TTL_HOURS removed the conversion's files."""
    if conversion.expired_at is not None:
        raise Gone(
            f"The results of conversion {conversion.pk} expired at {conversion.expired_at.isoformat()} "
            "(RESULT_TTL_HOURS): its files and text were removed."
        )


# --- expiry --------------------------------------------------------------------------------


def expire_results(*, ttl_hours: int, now=None) -> dict[str, int]:
    """Remove the outputs of conversions finished more than ``ttl_hours`` ago and the
    uploads of documents whose conversions all did (or that have none and are that old);
    mark them expired. ``ttl_hours`` 0: keep everything (returns zeros). Idempotent.
    Returns {"conversions": n, "documents": m} expired by this call."""
    if ttl_hours <= 0:
        return {"conversions": 0, "documents": 0}
    now = now or timezone.now()
    cutoff = now - timedelta(hours=ttl_hours)
    expired = {"conversions": 0, "documents": 0}
    while True:
        count = expire_conversions(cutoff=cutoff, now=now)
        expired["conversions"] += count
        if count < EXPIRE_BATCH:
            break
    expired["documents"] = expire_documents(cutoff=cutoff, now=now)
    if expired["conversions"] or expired["documents"]:
        logger.info(
            "results expired conversions=%s documents=%s ttl_hours=%s",
            expired["conversions"],
            expired["documents"],
            ttl_hours,
        )
    return expired


def expire_conversions(*, cutoff, now) -> int:
    """One batch: rows locked, so a retry cannot requeue one while its files go."""
    with transaction.atomic():
        rows = list(
            Conversion.objects.select_for_update(skip_locked=True)
            .filter(status__in=FINISHED, finished_at__lt=cutoff, expired_at__isnull=True)
            .select_related("document")
            .order_by("finished_at")[:EXPIRE_BATCH]
        )
        if not rows:
            return 0
        ids = [conversion.pk for conversion in rows]
        Conversion.objects.filter(pk__in=ids).update(expired_at=now, output_bytes=0, markdown_edited=None)
        PageResult.objects.filter(conversion_id__in=ids).update(
            cells=[], markdown="", markdown_nohf="", markdown_edited=None
        )
        prefixes = output_prefixes(rows)
        stems = {conversion.document.stem for conversion in rows}
        transaction.on_commit(lambda: remove_files(Removal(prefixes=prefixes), stems))
    return len(rows)


def expire_documents(*, cutoff, now) -> int:
    """Uploads older than ``cutoff`` none of whose conversions is unfinished or finished
    since; one conditional UPDATE decides, so a document queued again meanwhile stays."""
    recent = Conversion.objects.filter(document=OuterRef("pk")).filter(
        Q(status__in=UNFINISHED) | Q(finished_at__gte=cutoff) | Q(expired_at__isnull=True)
    )
    with transaction.atomic():
        documents = list(
            Document.objects.select_for_update(skip_locked=True)
            .filter(created_at__lt=cutoff, expired_at__isnull=True)
            .filter(~Exists(recent))
        )
        Document.objects.filter(pk__in=[document.pk for document in documents]).update(expired_at=now)
        keys = [key for document in documents for key in (document.stored_path, document.original_path) if key]
        transaction.on_commit(lambda: remove_files(Removal(keys=keys), set()))
    return len(documents)


@dataclass
class Removal:
    """What to remove once a transaction commits: stored files by key, stored prefixes
    (output folders, every attempt's), and this host's local staging folders."""

    keys: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    local: list[Path] = field(default_factory=list)


def remove_files(removal: Removal, stems: set[str]) -> None:
    """Remove the files; a storage error is logged, never raised (the rows are gone)."""
    try:
        for key in removal.keys:
            storage.delete(key)
        for prefix in removal.prefixes:
            storage.delete_prefix(prefix)
    except Exception:
        logger.exception("could not remove stored files %s", removal)
    for path in removal.local:
        shutil.rmtree(path, ignore_errors=True)
    if storage.is_local():
        for stem in stems:  # the original app's by-name links to folders now gone
            unlink_dangling(settings.OUTPUT_BY_STEM_DIR, stem)


# --- deletion ------------------------------------------------------------------------------


def delete_conversion(*, conversion: Conversion) -> None:
    """Delete a conversion, its page results and its files. A queued or running one is
    cancelled first (services.cancel_conversion); a running worker stops at its next page,
    finding the job gone (it cannot write to a deleted row: LostClaim)."""
    from conversions import services

    if conversion.status in UNFINISHED:
        try:
            services.cancel_conversion(conversion=conversion)
        except IllegalTransition:  # it finished meanwhile
            pass
    with transaction.atomic():
        locked = Conversion.objects.select_for_update().select_related("document").filter(pk=conversion.pk).first()
        if locked is None:  # deleted by a concurrent request
            return
        files = conversion_files([locked])
        locked.delete()
        transaction.on_commit(lambda: remove_files(files, {locked.document.stem}))


def delete_document(*, document: Document) -> None:
    """Delete an uploaded document with every conversion of it, their rows and files;
    unfinished conversions are cancelled first, as delete_conversion does."""
    from conversions import services

    for conversion in Conversion.objects.filter(document=document, status__in=UNFINISHED):
        try:
            services.cancel_conversion(conversion=conversion)
        except IllegalTransition:
            pass
    with transaction.atomic():
        locked = Document.objects.select_for_update().filter(pk=document.pk).first()
        if locked is None:
            return
        conversions = list(Conversion.objects.select_for_update().filter(document=locked))
        files = conversion_files(conversions)
        files.keys += [key for key in (locked.stored_path, locked.original_path) if key]
        locked.delete()  # cascades to its conversions and their page results
        transaction.on_commit(lambda: remove_files(files, {locked.stem}))


def output_prefixes(conversions) -> list[str]:
    """The storage prefixes of conversions' outputs: ``outputs/<id>`` (every attempt's
    upload under it) and a recorded output_dir outside it (none since 0015)."""
    prefixes = [storage.conversion_prefix(conversion.pk) for conversion in conversions]
    return prefixes + [
        conversion.output_dir
        for conversion in conversions
        if conversion.output_dir
        and not conversion.output_dir.startswith(storage.conversion_prefix(conversion.pk) + "/")
    ]


def conversion_files(conversions) -> Removal:
    """Output prefixes, and the local staging folders of jobs that were running here."""
    return Removal(
        prefixes=output_prefixes(conversions),
        local=[settings.STAGING_DIR / str(conversion.pk) for conversion in conversions],
    )


# --- bytes stored ---------------------------------------------------------------------------


def folder_bytes(prefix: str) -> int:
    """Bytes of the stored files directly under ``prefix`` (outputs are flat); 0 if absent."""
    return storage.prefix_bytes(str(prefix))


def stored_bytes() -> dict[str, int]:
    """Bytes kept on storage by kind, from sizes recorded when the files were written:
    ``uploads`` (Document.size, as uploaded; a repaired PDF's second copy is not counted)
    and ``outputs`` (Conversion.output_bytes, measured once when the outputs were
    published; a user's Markdown edit changes it by a few bytes). Expired and deleted
    ones count 0. Two aggregate queries: no walk of the storage at scrape time."""
    uploads = Document.objects.filter(expired_at__isnull=True).aggregate(total=Sum("size"))["total"]
    outputs = Conversion.objects.filter(expired_at__isnull=True).aggregate(total=Sum("output_bytes"))["total"]
    return {"uploads": uploads or 0, "outputs": outputs or 0}
