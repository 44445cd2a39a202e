"""What an upload is and how many pages it has, decided at upload from its bytes.

The type comes from the content (workers/inputs/sniff.py), never from the name alone;
each kind is checked as far as the upload request can afford: a PDF is opened, an
image's frames are counted and bounded (pixel cap, decompression bombs), an Office or
text document is only sized (LibreOffice reads it in the worker, which records its
page count). Raises the domain errors the API turns into 400/413/415.
"""

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from conversions.exceptions import DocumentTooLarge, InvalidDocument, UnsupportedDocumentType
from workers.inputs import InvalidInput, UnsupportedType, sniff
from workers.inputs.images import inspect_image
from workers.inputs.repair import RepairOutcome, inspect_or_repair
from workers.pdf import InvalidPdf


@dataclass(frozen=True)
class DocumentFacts:
    kind: str  # Document.Kind
    content_type: str
    suffix: str  # of the stored file
    page_count: int | None  # None: known only once a worker has converted it
    repair: RepairOutcome | None = None  # a damaged PDF whose repair was written to ``repaired``


def inspect_upload(path: Path, *, name: str, max_pages: int, repaired: Path) -> DocumentFacts:
    """The facts of the stored upload at ``path`` (``name``: the client's file name). A PDF
    MuPDF cannot read is repaired into ``repaired`` when pages can be recovered."""
    try:
        input_type = sniff(path, name=name)
    except UnsupportedType as error:
        raise UnsupportedDocumentType(str(error)) from None
    page_count, repair = None, None
    try:
        if input_type.kind == "pdf":
            info, repair = inspect_or_repair(path, repaired, max_pages=max_pages)
            page_count = info.page_count
        elif input_type.kind == "image":
            page_count = inspect_image(path, label=input_type.label, max_pixels=settings.MAX_IMAGE_PIXELS).page_count
        else:
            check_office_size(path, input_type.label)
    except (InvalidPdf, InvalidInput) as error:
        raise InvalidDocument(str(error)) from None
    if page_count is not None and page_count > max_pages:
        noun = "PDF" if input_type.kind == "pdf" else f"{input_type.label} image"
        raise DocumentTooLarge(f"The {noun} has {page_count} pages; the limit is {max_pages}.")
    return DocumentFacts(
        kind=input_type.kind,
        content_type=input_type.content_type,
        suffix=input_type.suffix,
        page_count=page_count,
        repair=repair,
    )


def check_office_size(path: Path, label: str) -> None:
    limit = settings.OFFICE_MAX_MB
    if path.stat().st_size > limit * 1024 * 1024:
        raise DocumentTooLarge(f"{label} files are converted up to {limit} MB (OFFICE_MAX_MB); this one is larger.")
