"""Storing uploaded files under server-chosen names.

An upload is first copied to a local temporary file (``DATA_DIR/tmp/<uuid>.part``),
where it is hashed, sniffed and validated (PyMuPDF needs a path); a valid one is then
stored under the key ``uploads/<uuid><suffix>`` (conversions/storage.py) and the local
copy removed.
"""

import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from conversions import storage
from conversions.exceptions import DocumentTooLarge, InvalidDocument


@dataclass(frozen=True)
class StoredUpload:
    path: Path  # the local temporary copy
    sha256: str
    size: int


def too_large(max_upload_mb: int) -> str:
    """The reason given for an upload over MAX_UPLOAD_MB, by the view or by daphne."""
    return f"File is larger than the {max_upload_mb} MB limit."


def store_upload(upload: UploadedFile) -> StoredUpload:
    """Copy an upload to the local ``DATA_DIR/tmp/<uuid>.pdf.part``, hashing it on the way.

    The caller validates the file and then calls ``commit_upload`` or ``discard_upload``.
    Raises ``InvalidDocument`` for an empty file and ``DocumentTooLarge`` past
    MAX_UPLOAD_MB (checked while copying, so an oversized stream stops early).
    """
    limit = settings.MAX_UPLOAD_MB * 1024 * 1024
    path = Path(settings.FILE_UPLOAD_TEMP_DIR) / f"{uuid.uuid4().hex}.pdf.part"
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


def commit_upload(stored: StoredUpload, suffix: str = ".pdf") -> str:
    """Store a validated upload under its final key, ``uploads/<uuid><suffix>`` (the
    suffix of its detected type), remove the local copy and return the key. Errors of
    the storage propagate (the local copy is then still there for discard_upload)."""
    key = storage.upload_key(stored.path.name.split(".", 1)[0] + suffix)
    storage.move_file(key, stored.path)  # locally one rename, as before object storage
    return key


def discard_upload(stored: StoredUpload) -> None:
    """Remove the local copy of an upload that is not kept."""
    stored.path.unlink(missing_ok=True)
