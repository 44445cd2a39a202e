"""Documents: storing an upload or a downloaded file, recording a repair or a page count,
and deleting documents with their conversions and files (the original app's DELETE)."""

import dataclasses
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.db import transaction

from conversions import retention, sources, storage
from conversions.document_types import inspect_upload
from conversions.exceptions import (
    DocumentTooLarge,
    IllegalTransition,
    InvalidRequest,
    NotFound,
)
from conversions.models import Conversion, Document
from conversions.uploads import commit_upload, discard_upload, store_upload
from workers.inputs.repair import RepairOutcome
from workers.outputs import display_name, safe_stem

Status = Conversion.Status


def create_document(*, owner, upload, max_pages: int) -> Document:
    """Store and validate an upload (PDF, image, Office or text document; the type comes
    from its bytes). A damaged PDF that MuPDF cannot read is repaired (workers/inputs/repair.py)
    and the repair is stored beside the original. Raises InvalidDocument with a readable
    reason (UnsupportedDocumentType for a type we do not convert, DocumentTooLarge past a limit)."""
    stored = store_upload(upload)
    repaired_part = stored.path.with_name(stored.path.name.split(".", 1)[0] + ".repaired.pdf.part")
    original = None
    committed: list[str] = []  # storage keys written so far, removed if anything fails
    try:
        facts = inspect_upload(stored.path, name=upload.name or "", max_pages=max_pages, repaired=repaired_part)
        key = commit_upload(stored, facts.suffix)
        committed.append(key)
        if facts.repair:
            original = key
            key = commit_upload(dataclasses.replace(stored, path=repaired_part), ".repaired.pdf")
            committed.append(key)
    except BaseException:
        discard_upload(stored)
        repaired_part.unlink(missing_ok=True)
        for written in committed:
            storage.delete(written)
        raise
    filename = display_name(upload.name)
    try:
        return Document.objects.create(
            owner=owner,
            filename=filename,
            stem=safe_stem(filename),
            stored_path=key,
            sha256=stored.sha256,
            size=stored.size,
            page_count=facts.page_count,
            content_type=facts.content_type,
            kind=facts.kind,
            **repair_fields(facts.repair, original),
        )
    except BaseException:
        for written in committed:
            storage.delete(written)
        raise


def repair_fields(repair: RepairOutcome | None, original: str | None) -> dict:
    if repair is None:
        return {}
    return {"repaired": True, "repair_note": repair.note, "original_path": str(original)}


def record_document_repair(*, document: Document, repaired_path: str, repair: RepairOutcome, page_count: int) -> None:
    """A worker repaired a stored file MuPDF could no longer read and stored the repair
    under the key ``repaired_path``: the document now points at it and keeps the key it
    had as the original."""
    original = document.original_path or document.stored_path
    fields = {**repair_fields(repair, original), "stored_path": repaired_path, "page_count": page_count}
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
    removal = retention.conversion_files(conversions)
    removal.keys += deleted
    deleted += [conversion.output_dir for conversion in conversions if conversion.output_dir]
    Document.objects.filter(pk__in=[document.pk for document in documents]).delete()
    stems = {document.stem for document in documents}
    transaction.on_commit(lambda: retention.remove_files(removal, stems))
    return deleted
