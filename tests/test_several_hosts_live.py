"""Two hosts (issue 18, "Several hosts"): two `qcluster` processes with their own
WORKER_HOST and DATA_DIR, and a daphne with a third DATA_DIR, sharing only PostgreSQL and
the object store. Every job completes and every output is served by the web process from
the object store; a cluster killed with SIGKILL (its whole process group) mid-job loses
nothing: after its lease expires the reaper gives the job back and the other host ends it.
"""

import io
import os
import signal
import time
import uuid
import zipfile
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone
from django_q.models import Schedule

from conversions.models import Conversion
from tests.dotsocr_standin import DotsOcrStandin
from tests.live import FINISHED, free_port, pdf_of, start_cluster, start_web, wait_for_status

pytestmark = pytest.mark.acceptance

HOSTS = ("host-a", "host-b")
JOBS = 40
LEASE_SECONDS = 6
LONG_PAGES = 24


def host_of(worker_id: str) -> str:
    return worker_id.rsplit(":", 1)[0]


def wait_until_final(client: httpx.Client, ids: list[str], timeout: float) -> dict[str, dict]:
    """GET each conversion until all are completed, failed or cancelled; id -> last body."""
    bodies: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(bodies) < len(ids):
        assert time.monotonic() < deadline, f"{len(ids) - len(bodies)} of {len(ids)} not final in {timeout}s"
        for conversion_id in ids:
            if conversion_id not in bodies:
                body = client.get(f"/api/v1/conversions/{conversion_id}").json()
                if body["status"] in FINISHED:
                    bodies[conversion_id] = body
        time.sleep(0.2)
    return bodies


def run_reaper_after(seconds: float) -> None:
    """The lease reaper's schedule (a migration's row, gone after another test's flush),
    due ``seconds`` from now instead of within the minute: each cluster's scheduler looks
    at due schedules every 30 s (django-q2), so it runs at most 30 s after that."""
    Schedule.objects.update_or_create(
        name="dotsocr-lease-reaper",
        defaults={
            "func": "workers.tasks.reap_expired_leases",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
            "next_run": timezone.now() + timedelta(seconds=seconds),
        },
    )


def submit(client: httpx.Client, name: str, content: bytes, **fields) -> str:
    response = client.post("/api/v1/conversions", files={"file": (name, content, "application/pdf")}, data=fields)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def assert_downloadable(client: httpx.Client, conversion_id: str, stem: str, pages: int) -> None:
    """The native API (Markdown, JSON, zip) and the original app's routes serve the job's
    outputs; the web process has none of them on its disk."""
    markdown = client.get(f"/api/v1/conversions/{conversion_id}/markdown")
    assert markdown.status_code == 200 and f"Page {pages}" in markdown.text, markdown.text[:200]
    json_pages = client.get(f"/api/v1/conversions/{conversion_id}/pages")
    assert json_pages.status_code == 200, json_pages.text[:200]
    archive = client.get(f"/api/v1/conversions/{conversion_id}/download.zip")
    assert archive.status_code == 200, archive.text[:200]
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert sum(name.endswith(".json") for name in names) >= pages, names
    files = client.get(f"/markdown-files/{stem}").json()
    assert files["total"] == pages, files
    original = client.get(f"/markdown/{stem}", params={"page_no": pages - 1}).json()
    assert f"Page {pages}" in original["content"], original
    image = client.get(f"/image/{stem}")
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff", image.content[:100]


@pytest.fixture
def hosts(live_env, s3_server, tmp_path_factory, transactional_db):
    """Environments of the web process and of the two hosts' clusters: one DATA_DIR each,
    the same database and object store, the noop engine (dotsocr, with a stand-in server,
    for the job that must still be running when its host is killed)."""
    data = {name: tmp_path_factory.mktemp(f"data-{name}") for name in ("web", *HOSTS)}
    prefix = f"several-hosts-{uuid.uuid4().hex[:8]}"
    with DotsOcrStandin(latency=0.5) as standin:
        common = {
            **live_env,
            **s3_server.env_for(prefix),
            "OCR_ENGINE": "noop",
            "OCR_ENGINE_URLS": standin.url,
            "DPI": "72",
            "NUM_THREAD": "1",
            "NUM_WORKERS": "2",
            "LEASE_SECONDS": str(LEASE_SECONDS),
        }
        envs = {
            "web": {**common, "DATA_DIR": str(data["web"])},
            **{host: {**common, "DATA_DIR": str(data[host]), "WORKER_HOST": host} for host in HOSTS},
        }
        yield envs, lambda: s3_server.keys(prefix)


def test_two_hosts_share_only_the_database_and_the_object_store(hosts, tmp_path):
    hosts, stored_keys = hosts
    port = free_port()
    logs = {name: tmp_path / name for name in ("web", *HOSTS)}
    for folder in logs.values():
        folder.mkdir()
    web = start_web(hosts["web"], port, logs["web"])
    clusters = {}
    try:
        for host in HOSTS:
            clusters[host] = start_cluster(hosts[host], logs[host])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            jobs = {}
            for index in range(JOBS):
                stem, pages = f"several-{index:02d}", index % 5 + 1
                jobs[submit(client, f"{stem}.pdf", pdf_of(pages, stem))] = (stem, pages)
            finished = wait_until_final(client, list(jobs), timeout=240)
            assert {body["status"] for body in finished.values()} == {"completed"}, finished
            rows = Conversion.objects.filter(pk__in=list(jobs))
            assert {host_of(row.worker_id) for row in rows} == set(HOSTS), "one host did all the work"
            for conversion_id, (stem, pages) in jobs.items():
                assert_downloadable(client, conversion_id, stem, pages)
            keys = stored_keys()  # the outputs are in the object store, under each job's id
            assert all(any(conversion_id in key for key in keys) for conversion_id in jobs), keys[:20]

            long_id = submit(client, "long.pdf", pdf_of(LONG_PAGES, "long"), engine="dotsocr")
            deadline = time.monotonic() + 90
            while (long := Conversion.objects.get(pk=long_id)).pages_done < 2:
                assert time.monotonic() < deadline and long.status not in FINISHED, long.status
                time.sleep(0.05)
            victim = host_of(long.worker_id)
            os.killpg(clusters[victim].process.pid, signal.SIGKILL)
            killed_at = Conversion.objects.get(pk=long_id)
            assert killed_at.status == "running" and killed_at.pages_done < LONG_PAGES
            run_reaper_after(LEASE_SECONDS + 1)

            final = wait_for_status(client, long_id, timeout=150)
            assert final["status"] == "completed", final
            done = Conversion.objects.get(pk=long_id)
            (survivor,) = set(HOSTS) - {victim}
            assert host_of(done.worker_id) == survivor and done.attempts == 2
            # given back by the lease reaper: the survivor's WORKER_HOST differs, so its new
            # worker processes do not take the victim's dead pids for their own
            assert "expired leases requeued=" in clusters[survivor].log_path.read_text(errors="replace")
            assert client.get(f"/api/v1/conversions/{long_id}/markdown").status_code == 200
            assert client.get("/markdown-files/long").json()["total"] == LONG_PAGES
    finally:
        for cluster in clusters.values():
            cluster.stop()
        web.stop()
