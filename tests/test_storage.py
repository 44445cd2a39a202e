"""Storage (conversions/storage.py): the same behaviour on the local filesystem and on a
real S3-compatible server (moto's, tests/s3server.py)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from conversions import storage
from dotsocr_site.env import object_storage_backend

BACKENDS = ["local", "s3"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each test using this runs once per backend; yields "local" or "s3"."""
    if request.param == "s3":
        request.getfixturevalue("s3_storage")
    return request.param


def test_put_read_list_delete(backend):
    assert storage.put("outputs/1/a/x.md", "héllo") == len("héllo".encode())
    storage.put("outputs/1/a/y.json", b"{}")
    storage.put("outputs/1/b/z.md", b"z")
    assert storage.read_text("outputs/1/a/x.md") == "héllo"
    assert storage.names("outputs/1/a") == ["x.md", "y.json"]
    assert storage.subprefixes("outputs/1") == ["a", "b"]
    assert storage.prefix_bytes("outputs/1/a") == len("héllo".encode()) + 2
    storage.delete_prefix("outputs/1/a")
    assert storage.names("outputs/1/a") == [] and storage.read_text("outputs/1/b/z.md") == "z"
    assert storage.is_local() == (backend == "local")


def test_s3_keys_land_in_the_bucket_under_the_prefix(s3_server, s3_storage):
    storage.put("uploads/abc.pdf", b"%PDF")
    assert s3_server.keys(s3_storage) == [f"{s3_storage}/uploads/abc.pdf"]
    with storage.local_copy("uploads/abc.pdf") as path:
        assert path.read_bytes() == b"%PDF"
    assert not path.exists()  # the temporary copy is gone


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
