"""Storing uploaded files under server-chosen names."""

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from conversions.exceptions import DocumentTooLarge, InvalidDocument


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    sha256: str
    size: int


def too_large(max_upload_mb: int) -> str:
    """The reason given for an upload over MAX_UPLOAD_MB, by the view or by daphne."""
    return f"File is larger than the {max_upload_mb} MB limit."


def store_upload(upload: UploadedFile) -> StoredUpload:
    """Copy an upload to ``UPLOAD_DIR/<uuid>.pdf.part``, hashing it on the way.

    The caller validates the file and then calls ``commit_upload`` or ``discard_upload``.
    Raises ``InvalidDocument`` for an empty file and ``DocumentTooLarge`` past
    MAX_UPLOAD_MB (checked while copying, so an oversized stream stops early).
    """
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    path = settings.UPLOAD_DIR / f"{uuid.uuid4().hex}.pdf.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "xb") as target:
            for chunk in upload.chunks():
                size += len(chunk)
                if size > limit:
                    raise DocumentTooLarge(too_large(settings.MAX_UPLOAD_MB))
                digest.update(chunk)
                target.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise InvalidDocument("The uploaded file is empty.")
    return StoredUpload(path=path, sha256=digest.hexdigest(), size=size)


def commit_upload(stored: StoredUpload, suffix: str = ".pdf") -> Path:
    """Give a validated upload its final name (atomic rename): ``<uuid><suffix>``, the
    suffix of its detected type."""
    final = stored.path.with_name(stored.path.name.split(".", 1)[0] + suffix)
    os.replace(stored.path, final)
    return final


def discard_upload(stored: StoredUpload) -> None:
    stored.path.unlink(missing_ok=True)
