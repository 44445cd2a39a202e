"""Every file the service keeps, through Django's storage API (settings.STORAGES["default"]).

Files are named by storage *keys* (``uploads/<uuid>.pdf``, ``outputs/<conversion id>/
<attempt>/<name>``), never absolute paths, so a worker on another host reads what the web
process stored and the web process serves what any worker wrote. Two backends:

- ``DataDirStorage``: the local filesystem under DATA_DIR (the default; a key is a path
  relative to DATA_DIR, so also a volume shared by several hosts works);
- django-storages' ``S3Storage`` when OBJECT_STORAGE_URL is set: only PutObject,
  GetObject, HeadObject, ListObjectsV2 and DeleteObjects are used, so AWS, MinIO, Ceph
  and R2 behave alike.

Programs that need a path (PyMuPDF, qpdf, LibreOffice) get a local copy (``local_copy``).
"""

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

CHUNK_BYTES = 1024 * 1024


class DataDirStorage(FileSystemStorage):
    """FileSystemStorage rooted at settings.DATA_DIR, read at each use (tests move it), and
    whose writes replace a file atomically (written beside it, then renamed): a reader sees
    the old content or the new, never a truncated file."""

    def __init__(self, **options):
        options.setdefault("allow_overwrite", True)
        super().__init__(**options)

    @property
    def base_location(self) -> str:
        return str(settings.DATA_DIR)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    def _save(self, name: str, content) -> str:
        full_path = Path(self.path(name))
        full_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = full_path.with_name(f".{full_path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "xb") as target:
                if hasattr(content, "chunks"):
                    for chunk in content.chunks(CHUNK_BYTES):
                        target.write(chunk)
                else:
                    shutil.copyfileobj(content, target, CHUNK_BYTES)
            if self.file_permissions_mode is not None:
                os.chmod(temporary, self.file_permissions_mode)
            os.replace(temporary, full_path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return str(name).replace("\\", "/")


def files() -> Storage:
    """The storage every kept file goes through (reset when a test changes STORAGES)."""
    return storages["default"]


def is_local() -> bool:
    """Whether files live on a filesystem of this host (DATA_DIR), where the original
    app's ``DATA_DIR/output/<stem>`` links can point at them."""
    return isinstance(files(), FileSystemStorage)


def local_path(key: str) -> Path:
    """The path of a key on the local backend (ValueError on object storage)."""
    if not is_local():
        raise ValueError("Object storage has no local paths.")
    return Path(files().path(key))


UPLOADS = "uploads"
OUTPUTS = "outputs"


def conversion_prefix(conversion_id) -> str:
    """``outputs/<id>``: every attempt of a conversion uploads under it."""
    return f"{OUTPUTS}/{conversion_id}"


def attempt_prefix(conversion_id, attempt: str) -> str:
    """``outputs/<id>/<attempt>``: one attempt's outputs; the completed conversion's
    output_dir names the one that is published."""
    return f"{conversion_prefix(conversion_id)}/{attempt}"


def shown_path(key: str) -> str:
    """A key as the original app's records show a file: its absolute path on the local
    backend, the key itself on object storage."""
    return str(local_path(key)) if is_local() else key


def upload_key(name: str) -> str:
    """``uploads/<name>``: a stored upload (``<uuid><suffix>``, a server-chosen name)."""
    return f"{UPLOADS}/{name}"


def repaired_key(key: str) -> str:
    """``uploads/<uuid>.repaired.pdf`` beside ``uploads/<uuid>.<suffix>``."""
    folder, _, name = key.rpartition("/")
    return join(folder, name.split(".", 1)[0] + ".repaired.pdf")


def join(*parts: str) -> str:
    return "/".join(part.strip("/") for part in parts if part)


def put(key: str, content: IO[bytes] | bytes | str) -> None:
    """Store ``content`` under ``key``, replacing what was there (one PutObject, or an
    atomic rename locally). Raises RuntimeError if the storage chose another name."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    if isinstance(content, bytes):
        from django.core.files.base import ContentFile

        wrapped: File = ContentFile(content)
    else:
        wrapped = File(content)
    saved = files().save(key, wrapped)
    if saved != key:
        raise RuntimeError(f"The storage stored {key!r} as {saved!r}.")


def put_file(key: str, path: Path) -> int:
    """Store a local file under ``key``; its size in bytes (of the local file: no request
    is made to ask)."""
    with open(path, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        put(key, source)
    return size


def move_file(key: str, path: Path) -> int:
    """Store a local file under ``key`` and remove it; its size in bytes. On the local
    backend, on the same file system, the file is renamed into place (never copied);
    elsewhere it is copied (``put_file``) and then removed. If storing fails, the local
    file is left where it was."""
    size = path.stat().st_size
    if _rename_into_data_dir(key, path, [path]):
        return size
    put_file(key, path)
    path.unlink(missing_ok=True)
    return size


def put_folder(prefix: str, folder: Path) -> int:
    """Store every file directly in a local folder under ``prefix/<name>``; total bytes.

    On the local backend, a folder of files on the same file system (the staging folder
    under DATA_DIR) is renamed into place whole, as before object storage: one rename
    instead of a copy per file (the folder is then gone). ``prefix`` is a new, unused
    attempt prefix, so nothing can be reading it. Elsewhere, or across file systems, each
    file is copied."""
    entries = sorted(folder.iterdir())
    size = sum(path.stat().st_size for path in entries if path.is_file())
    if all(path.is_file() for path in entries) and _rename_into_data_dir(prefix, folder, entries):
        return size
    return sum(put_file(join(prefix, path.name), path) for path in entries if path.is_file())


def _rename_into_data_dir(key: str, source: Path, files_moved: list[Path]) -> bool:
    """Rename a local file or folder to ``key`` on the local backend, giving its files the
    mode a write through the storage gives them (FILE_UPLOAD_PERMISSIONS); False on
    object storage, across file systems (EXDEV) or when ``key`` exists as a folder."""
    backend = files()
    if not isinstance(backend, FileSystemStorage):
        return False
    if backend.file_permissions_mode is not None:
        for path in files_moved:
            os.chmod(path, backend.file_permissions_mode)
    target = Path(backend.path(key))
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError:
        return False
    return True


def read_bytes(key: str) -> bytes:
    """A small file whole (Markdown, JSON); never used for downloads."""
    with files().open(key, "rb") as handle:
        return handle.read()


def read_text(key: str) -> str:
    return read_bytes(key).decode("utf-8")


def exists(key: str) -> bool:
    return bool(key) and files().exists(key)


def names(prefix: str) -> list[str]:
    """The names of the files directly under ``prefix`` (sorted; none if it is absent)."""
    try:
        _, found = files().listdir(prefix)
    except (FileNotFoundError, SuspiciousFileOperation):  # absent, or not a key (a path outside DATA_DIR)
        return []
    return sorted(name for name in found if not name.startswith("."))


def prefix_bytes(prefix: str) -> int:
    """The bytes of the files directly under ``prefix``."""
    return sum(files().size(join(prefix, name)) for name in names(prefix))


def delete(key: str) -> None:
    """Remove one file; nothing if it is absent."""
    if key:
        files().delete(key)


def delete_prefix(prefix: str) -> None:
    """Remove every file under ``prefix`` (recursively): a folder locally, a ListObjectsV2
    + DeleteObjects sweep on object storage."""
    prefix = prefix.strip("/")
    if not prefix:
        raise ValueError("Refusing to delete the whole storage.")
    backend = files()
    if isinstance(backend, FileSystemStorage):
        path = Path(backend.path(prefix))
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return
    client, bucket = _s3(backend)
    full = backend._normalize_name(prefix) + "/"  # type: ignore[attr-defined]
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=full):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:  # at most 1000 a page, DeleteObjects' own limit
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def _s3(backend: Storage):
    """The S3 client of this thread (django-storages keeps one per thread) and the bucket."""
    return backend.connection.meta.client, backend.bucket_name  # type: ignore[attr-defined]


def subprefixes(prefix: str) -> list[str]:
    """The "folders" directly under ``prefix`` (their names)."""
    try:
        found, _ = files().listdir(prefix)
    except FileNotFoundError:
        return []
    return sorted(found)


def copy_to(key: str, target: Path) -> None:
    """Stream a stored file into a local file (chunks of 1 MiB)."""
    with files().open(key, "rb") as source, open(target, "xb") as destination:
        shutil.copyfileobj(source, destination, CHUNK_BYTES)


@contextmanager
def local_copy(key: str, *, suffix: str = "") -> Iterator[Path]:
    """A local path with the content of ``key`` for programs that need one: the file
    itself on the local backend, else a temporary copy in DATA_DIR/tmp removed on exit."""
    if is_local():
        yield local_path(key)
        return
    scratch = Path(tempfile.mkdtemp(dir=settings.DATA_DIR / "tmp", prefix="stored-"))
    try:
        target = scratch / f"document{suffix or Path(key).suffix}"
        copy_to(key, target)
        yield target
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def open_stream(key: str) -> tuple[IO[bytes], int]:
    """A stored file opened for reading in chunks, and its size in bytes: the local file,
    or the body of one GetObject read as it arrives (django-storages' own S3File would
    first copy the whole object into memory). The caller closes it."""
    backend = files()
    if isinstance(backend, FileSystemStorage):
        handle = open(backend.path(key), "rb")
        return handle, os.fstat(handle.fileno()).st_size
    client, bucket = _s3(backend)
    answer = client.get_object(Bucket=bucket, Key=backend._normalize_name(key))  # type: ignore[attr-defined]
    return answer["Body"], answer["ContentLength"]


def presigned_url(key: str, *, filename: str, inline: bool) -> str | None:
    """A time-limited GET URL of the object store for ``key`` when
    OBJECT_STORAGE_PRESIGNED_DOWNLOADS is on (None otherwise, and always locally)."""
    if not settings.OBJECT_STORAGE_PRESIGNED_DOWNLOADS or is_local():
        return None
    from django.utils.http import content_disposition_header

    disposition = content_disposition_header(not inline, filename)
    return files().url(key, parameters={"ResponseContentDisposition": disposition})  # type: ignore[call-arg]


@dataclass(frozen=True)
class StoredFile:
    """A stored file by key, with the few Path-like reads callers use (name, suffix,
    size, read_bytes); ``open_stream(key)`` streams it."""

    key: str

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def size(self) -> int:
        return files().size(self.key)

    def read_bytes(self) -> bytes:
        return read_bytes(self.key)

    def read_text(self, encoding: str = "utf-8") -> str:
        return read_bytes(self.key).decode(encoding)

    def is_file(self) -> bool:
        return exists(self.key)


def folder(prefix: str) -> list[StoredFile]:
    """The files directly under ``prefix``, sorted by name."""
    return [StoredFile(join(prefix, name)) for name in names(prefix)]
