"""A worker killed with SIGKILL mid-job: django-q2 starts a replacement, which sees the
dead worker's job and gives it back to the queue at once (no waiting for the lease);
a worker resumes it after the last checkpointed page. Real qcluster, real kill."""

import os
import signal
import time

import pytest

from conversions.models import Conversion, PageResult
from tests.live import start_cluster, wait_for_status
from tests.test_progress_live import long_pdf

pytestmark = pytest.mark.acceptance


def test_killed_worker_job_is_resumed_by_another(live_client, live_env, tmp_path):
    # A long lease: recovery must not come from the lease reaper.
    cluster = start_cluster({**live_env, "LEASE_SECONDS": "600", "NUM_WORKERS": "1"}, tmp_path)
    try:
        response = live_client.post(
            "/api/v1/conversions", files={"file": ("crash.pdf", long_pdf("crash"), "application/pdf")}
        )
        conversion_id = response.json()["id"]
        deadline = time.monotonic() + 60
        while Conversion.objects.get(pk=conversion_id).pages_done < 2:
            assert time.monotonic() < deadline, "the job never got going"
            time.sleep(0.05)
        victim = Conversion.objects.get(pk=conversion_id)
        os.kill(int(victim.worker_id.rsplit(":", 1)[1]), signal.SIGKILL)
        killed_at_pages = PageResult.objects.filter(conversion_id=conversion_id).count()

        final = wait_for_status(live_client, conversion_id, timeout=60)
    finally:
        cluster.stop()
    assert final["status"] == "completed", final
    done = Conversion.objects.get(pk=conversion_id)
    assert done.attempts == 2 and done.worker_id != victim.worker_id
    pages = PageResult.objects.filter(conversion_id=conversion_id)
    assert pages.count() == done.pages_total
    # pages checkpointed before the kill were kept, not done again
    assert pages.filter(created_at__lt=done.started_at).count() >= killed_at_pages
