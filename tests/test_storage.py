"""Storage (conversions/storage.py): the same behaviour on the local filesystem and on a
real S3-compatible server (moto's, tests/s3server.py)."""

import io
import zipfile
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from conversions import retention, storage
from conversions.models import Conversion, Document
from dotsocr_site.env import object_storage_backend
from tests.conftest import FOUR_PAGES, FOUR_PAGES_TEXT, ONE_PAGE
from workers import pipeline

BACKENDS = ["local", "s3"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each test using this runs once per backend; yields "local" or "s3"."""
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    return request.param


def test_put_read_list_delete(backend):
    storage.put("outputs/1/a/x.md", "héllo")
    storage.put("outputs/1/a/y.json", b"{}")
    storage.put("outputs/1/b/z.md", b"z")
    assert storage.read_text("outputs/1/a/x.md") == "héllo"
    assert storage.names("outputs/1/a") == ["x.md", "y.json"]
    assert storage.subprefixes("outputs/1") == ["a", "b"]
    assert storage.prefix_bytes("outputs/1/a") == len("héllo".encode()) + 2
    storage.delete_prefix("outputs/1/a")
    assert storage.names("outputs/1/a") == [] and storage.read_text("outputs/1/b/z.md") == "z"
    assert storage.is_local() == (backend == "local")


def test_s3_keys_land_in_the_bucket_under_the_prefix(s3_server, s3_storage, tmp_path):
    source = tmp_path / "abc.pdf"
    source.write_bytes(b"%PDF")
    assert storage.put_file("uploads/abc.pdf", source) == 4
    assert s3_server.keys(s3_storage) == [f"{s3_storage}/uploads/abc.pdf"]
    with storage.local_copy("uploads/abc.pdf") as path:
        assert path.read_bytes() == b"%PDF"
    assert not path.exists()  # the temporary copy is gone


def test_put_folder_stores_every_file_and_renames_a_local_staging_folder_whole(backend, settings):
    """On the local backend a staging folder under DATA_DIR becomes the attempt's folder by
    one rename (the files keep their inodes: nothing is copied); on S3 each file is put."""
    staging = settings.STAGING_DIR / "put-folder-test"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "doc.md").write_text("# one")
    (staging / "doc_page_0.jpg").write_bytes(b"\xff\xd8jpeg")
    inode = (staging / "doc.md").stat().st_ino
    assert storage.put_folder("outputs/9/1-abc", staging) == len("# one") + 6
    assert storage.names("outputs/9/1-abc") == ["doc.md", "doc_page_0.jpg"]
    assert storage.read_text("outputs/9/1-abc/doc.md") == "# one"
    if backend == "local":
        assert not staging.exists()
        moved = storage.local_path("outputs/9/1-abc/doc.md").stat()
        assert moved.st_ino == inode
        assert moved.st_mode & 0o777 == settings.FILE_UPLOAD_PERMISSIONS  # as a write through the storage
    storage.delete_prefix("outputs/9")


def test_a_committed_upload_is_moved_into_storage_and_its_local_copy_is_gone(backend, settings):
    """Locally one rename (same inode, the storage's file mode); on S3 a copy. Either way
    the temporary copy is gone and the key reads the bytes."""
    from conversions.uploads import commit_upload, store_upload

    stored = store_upload(SimpleUploadedFile("a.pdf", ONE_PAGE.read_bytes()))
    inode = stored.path.stat().st_ino
    key = commit_upload(stored, ".pdf")
    assert key.startswith("uploads/") and key.endswith(".pdf") and not stored.path.exists()
    assert storage.read_bytes(key) == ONE_PAGE.read_bytes()
    if backend == "local":
        kept = storage.local_path(key).stat()
        assert kept.st_ino == inode and kept.st_mode & 0o777 == settings.FILE_UPLOAD_PERMISSIONS
    storage.delete(key)


@pytest.mark.parametrize(
    "url",
    [
        "http://bucket/prefix",
        "s3://",
        "s3://Bad_Bucket/x",
        "s3://bucket/a//b",
        "s3://bucket/../x",
        "s3://b?x=1",
        "s3://key:secret@bucket/x",
    ],
)
def test_malformed_object_storage_url_is_refused(monkeypatch, url):
    monkeypatch.setenv("OBJECT_STORAGE_URL", url)
    with pytest.raises(ImproperlyConfigured, match="OBJECT_STORAGE_URL"):
        object_storage_backend("OBJECT_STORAGE_URL", presigned_seconds=60)


def test_object_storage_url_names_bucket_and_prefix(monkeypatch):
    monkeypatch.setenv("OBJECT_STORAGE_URL", "s3://my-bucket/some/prefix/")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    options = object_storage_backend("OBJECT_STORAGE_URL", presigned_seconds=60)["OPTIONS"]
    assert (options["bucket_name"], options["location"], options["endpoint_url"]) == (
        "my-bucket",
        "some/prefix",
        "http://minio:9000",
    )
    monkeypatch.delenv("OBJECT_STORAGE_URL")
    assert object_storage_backend("OBJECT_STORAGE_URL", presigned_seconds=60) == {
        "BACKEND": "conversions.storage.DataDirStorage"
    }


# --- the service on both backends -------------------------------------------------------------


@pytest.fixture
def client(db):
    return APIClient()


def submit_and_convert(client, path=FOUR_PAGES) -> Conversion:
    file = SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")
    answer = client.post("/api/v1/conversions", {"file": file, "engine": "textlayer"}, format="multipart")
    assert answer.status_code == 201, answer.content
    assert pipeline.run_conversion(answer.json()["id"]) == "completed"
    return Conversion.objects.select_related("document").get(pk=answer.json()["id"])


def body_of(response) -> bytes:
    assert response.streaming  # streamed from storage in chunks, never read whole in the view
    return b"".join(response.streaming_content)


def test_upload_convert_download_on_both_backends(backend, client, settings, s3_server):
    conversion = submit_and_convert(client)
    stem = "pdflatex-4-pages"
    assert conversion.document.stored_path.startswith("uploads/") and conversion.output_dir.startswith(
        f"outputs/{conversion.pk}/"
    )
    local_uploads = list((settings.DATA_DIR / "uploads").rglob("*.pdf"))
    local_outputs = list((settings.DATA_DIR / "outputs").rglob("*.md"))
    if backend == "s3":  # nothing kept on this host's disk: every file is in the bucket
        assert local_uploads == [] and local_outputs == []
        keys = s3_server.keys(settings.STORAGES["default"]["OPTIONS"]["location"])
        assert any(key.endswith(conversion.document.stored_path) for key in keys)
        assert any(key.endswith(f"{conversion.output_dir}/{stem}.md") for key in keys)
    else:
        assert len(local_uploads) == 1 and local_outputs

    base = f"/api/v1/conversions/{conversion.pk}"
    markdown = body_of(client.get(f"{base}/files/{stem}.md")).decode()
    assert FOUR_PAGES_TEXT in markdown
    image = client.get(f"{base}/pages/0/image")
    assert image["Content-Type"] == "image/jpeg" and body_of(image)[:2] == b"\xff\xd8"
    assert int(image["Content-Length"]) > 0

    archive = zipfile.ZipFile(io.BytesIO(body_of(client.get(f"{base}/download.zip"))))
    assert f"{stem}.md" in archive.namelist() and f"{stem}_page_3.jpg" in archive.namelist()
    assert FOUR_PAGES_TEXT in archive.read(f"{stem}.md").decode()

    # The original app's routes serve the same content from storage.
    files = client.get(f"/markdown-files/{stem}").json()["markdown_files"]
    assert [entry["filename"] for entry in files] == [f"{stem}_page_{n}_nohf.md" for n in range(4)]
    assert FOUR_PAGES_TEXT in client.get(f"/markdown/{stem}", {"page_no": 1}).json()["content"]
    assert body_of(client.get(f"/image/{stem}", {"page_no": 2}))[:2] == b"\xff\xd8"

    # The original editor's save writes the edited Markdown to storage, every file in step.
    saved = client.put(f"/markdown/{stem}?page_no=1", {"content": "Edited in place"}, format="json")
    assert saved.status_code == 200, saved.content
    assert client.get(f"/markdown/{stem}", {"page_no": 1}).json()["content"] == "Edited in place"
    assert storage.read_text(f"{conversion.output_dir}/{stem}_page_1_nohf.md") == "Edited in place"
    assert "Edited in place" in body_of(client.get(f"{base}/files/{stem}_nohf.md")).decode()
    assert storage.read_text(f"{conversion.output_dir}/{stem}_page_0_nohf.md").count(FOUR_PAGES_TEXT) >= 1


def test_a_worker_with_another_data_dir_converts_through_object_storage(s3_storage, client, settings, tmp_path):
    """The web process and the worker share no disk: only the database and the bucket."""
    file = SimpleUploadedFile(ONE_PAGE.name, ONE_PAGE.read_bytes(), content_type="application/pdf")
    answer = client.post("/api/v1/conversions", {"file": file, "engine": "textlayer"}, format="multipart")
    web_data_dir = settings.DATA_DIR
    worker_data_dir = tmp_path / "worker-host"
    for sub in ("tmp", "staging", "output"):
        (worker_data_dir / sub).mkdir(parents=True)
    settings.DATA_DIR, settings.STAGING_DIR = worker_data_dir, worker_data_dir / "staging"
    settings.OUTPUT_BY_STEM_DIR = worker_data_dir / "output"
    assert pipeline.run_conversion(answer.json()["id"]) == "completed"
    assert [path for path in worker_data_dir.rglob("*") if path.is_file()] == []  # its temporary copies are gone
    settings.DATA_DIR = web_data_dir
    conversion = Conversion.objects.get(pk=answer.json()["id"])
    files = client.get(f"/api/v1/conversions/{conversion.pk}/files/{conversion.document.stem}.md")
    assert files.status_code == 200 and body_of(files).strip()
    assert not any(path.is_file() for path in (web_data_dir / "outputs").rglob("*"))


def test_a_crashed_attempts_uploads_are_never_shown_and_are_removed(backend, client, make_conversion, settings):
    conversion = make_conversion(ONE_PAGE, engine="textlayer")
    crashed = storage.attempt_prefix(conversion.pk, "1-crashed")
    storage.put(f"{crashed}/{conversion.document.stem}.md", "half of an earlier attempt")
    # Not completed: no route shows what an attempt uploaded.
    assert client.get(f"/api/v1/conversions/{conversion.pk}/files/{conversion.document.stem}.md").status_code == 404
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    conversion.refresh_from_db()
    assert storage.subprefixes(storage.conversion_prefix(conversion.pk)) == [conversion.output_dir.rsplit("/", 1)[1]]
    served = body_of(client.get(f"/api/v1/conversions/{conversion.pk}/files/{conversion.document.stem}.md"))
    assert b"half of an earlier attempt" not in served


def test_a_superseded_attempt_removes_what_it_uploaded(backend, make_conversion, monkeypatch):
    from conversions.exceptions import LostClaim
    from conversions.services import running

    conversion = make_conversion(ONE_PAGE, engine="textlayer")

    def taken_meanwhile(**kwargs):
        raise LostClaim("taken by another worker")

    monkeypatch.setattr(running, "complete_conversion", taken_meanwhile)
    monkeypatch.setattr(pipeline.services, "complete_conversion", taken_meanwhile)
    assert pipeline.run_conversion(str(conversion.pk)) == "lost"
    assert storage.subprefixes(storage.conversion_prefix(conversion.pk)) == []


def test_presigned_downloads_redirect_to_the_object_store(s3_storage, client, settings):
    import httpx

    settings.OBJECT_STORAGE_PRESIGNED_DOWNLOADS = True
    conversion = submit_and_convert(client, ONE_PAGE)
    name = f"{conversion.document.stem}.md"
    answer = client.get(f"/api/v1/conversions/{conversion.pk}/files/{name}")
    assert answer.status_code == 302 and "X-Amz-Signature=" in answer["Location"]
    fetched = httpx.get(answer["Location"])
    assert fetched.status_code == 200 and fetched.content == storage.read_bytes(f"{conversion.output_dir}/{name}")
    assert f'filename="{name}"' in fetched.headers["content-disposition"]


def test_presigned_setting_is_ignored_on_the_local_filesystem(client, settings):
    settings.OBJECT_STORAGE_PRESIGNED_DOWNLOADS = True
    conversion = submit_and_convert(client, ONE_PAGE)
    answer = client.get(f"/api/v1/conversions/{conversion.pk}/files/{conversion.document.stem}.md")
    assert answer.status_code == 200 and body_of(answer)


def test_delete_and_expiry_remove_the_stored_files(backend, client, django_capture_on_commit_callbacks):
    deleted, expired = submit_and_convert(client, ONE_PAGE), submit_and_convert(client, ONE_PAGE)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/api/v1/documents/{deleted.document.pk}").status_code == 204
    assert not storage.exists(deleted.document.stored_path)
    assert storage.subprefixes(storage.conversion_prefix(deleted.pk)) == []

    Conversion.objects.filter(pk=expired.pk).update(finished_at=timezone.now() - timedelta(hours=5))
    Document.objects.filter(pk=expired.document.pk).update(created_at=timezone.now() - timedelta(hours=5))
    with django_capture_on_commit_callbacks(execute=True):
        retention.expire_results(ttl_hours=1)
    assert storage.names(expired.output_dir) == []
    assert not storage.exists(expired.document.stored_path)

    # The original app's DELETE /documents/<name> removes them as well.
    named = submit_and_convert(client, ONE_PAGE)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.delete(f"/documents/{named.document.filename}").status_code == 200
    assert not storage.exists(named.document.stored_path) and storage.names(named.output_dir) == []
    assert storage.subprefixes(storage.OUTPUTS) == []


def test_settings_refuse_a_malformed_object_storage_url_at_start_up(tmp_path):
    from tests.test_settings_env import settings_import

    result = settings_import(DATA_DIR=str(tmp_path), OBJECT_STORAGE_URL="s3:/no-bucket")
    assert result.returncode != 0 and "OBJECT_STORAGE_URL" in result.stderr and "ImproperlyConfigured" in result.stderr


def test_migration_turns_paths_under_data_dir_into_keys():
    from importlib import import_module
    from pathlib import Path

    migration = import_module("conversions.migrations.0015_storage_keys")
    data_dir = Path("/srv/dotsocr/data")
    assert migration.to_key("/srv/dotsocr/data/uploads/ab12.pdf", data_dir) == "uploads/ab12.pdf"
    assert migration.to_key("/srv/dotsocr/data/outputs/7c0c", data_dir) == "outputs/7c0c"
    assert migration.to_key("/elsewhere/x.pdf", data_dir) == "/elsewhere/x.pdf"  # left as it was
    assert migration.to_key("uploads/ab12.pdf", data_dir) == "uploads/ab12.pdf"  # already a key
    assert migration.to_key("", data_dir) == ""
    assert migration.to_path("uploads/ab12.pdf", data_dir) == "/srv/dotsocr/data/uploads/ab12.pdf"
