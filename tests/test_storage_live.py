"""Object storage through real processes: a daphne and a qcluster started with the same
OBJECT_STORAGE_URL (moto's S3 server) and different DATA_DIRs, as on two hosts that
share only PostgreSQL and the bucket."""

import uuid

import httpx
import pytest

from tests.conftest import FOUR_PAGES, FOUR_PAGES_TEXT
from tests.live import free_port, start_cluster, start_web, submit, wait_for_status, wait_until_healthy

pytestmark = pytest.mark.acceptance


@pytest.fixture
def s3_stack(live_env, s3_server, tmp_path, transactional_db):
    """A web process and a worker cluster, each with a DATA_DIR of its own, on one S3
    prefix; yields (base URL, prefix, web DATA_DIR, worker DATA_DIR)."""
    prefix = f"live-{uuid.uuid4().hex[:12]}"
    web_dir, worker_dir = tmp_path / "web-host", tmp_path / "worker-host"
    port = free_port()
    web = start_web({**live_env, **s3_server.env_for(prefix), "DATA_DIR": str(web_dir)}, port, tmp_path)
    cluster = None
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", web)
        (tmp_path / "cluster").mkdir()
        cluster_env = {**live_env, **s3_server.env_for(prefix), "DATA_DIR": str(worker_dir)}
        cluster = start_cluster(cluster_env, tmp_path / "cluster")
        yield f"http://127.0.0.1:{port}", prefix, web_dir, worker_dir
    finally:
        if cluster is not None:
            cluster.stop()
        web.stop()


def kept_files(data_dir):
    return [path for sub in ("uploads", "outputs") for path in (data_dir / sub).rglob("*") if path.is_file()]


def test_web_and_worker_with_no_shared_disk_convert_through_the_bucket(s3_stack, s3_server):
    base_url, prefix, web_dir, worker_dir = s3_stack
    with httpx.Client(base_url=base_url, timeout=30) as client:
        answer = submit(client, FOUR_PAGES)
        assert answer.status_code == 201, answer.text
        conversion_id = answer.json()["id"]
        assert wait_for_status(client, conversion_id, timeout=180)["status"] == "completed"
        markdown = client.get(f"/api/v1/conversions/{conversion_id}/files/pdflatex-4-pages.md")
        assert markdown.status_code == 200 and FOUR_PAGES_TEXT in markdown.text
        assert client.get(f"/api/v1/conversions/{conversion_id}/download.zip").status_code == 200
        assert FOUR_PAGES_TEXT in client.get("/markdown/pdflatex-4-pages", params={"page_no": 0}).json()["content"]
    keys = s3_server.keys(prefix)
    assert any(key.startswith(f"{prefix}/uploads/") for key in keys)
    assert any(key.startswith(f"{prefix}/outputs/{conversion_id}/") for key in keys)
    assert kept_files(web_dir) == [] and kept_files(worker_dir) == []  # every kept file is in the bucket
