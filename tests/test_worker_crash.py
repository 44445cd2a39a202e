"""A worker killed with SIGKILL mid-job: its lease expires, the reaper requeues the job,
another worker resumes it after the last checkpointed page. Real qcluster, real kill."""

import os
import signal
import time

import pytest

from conversions import services
from conversions.models import Conversion, PageResult
from tests.live import start_cluster, wait_for_status
from tests.test_progress_live import long_pdf

pytestmark = pytest.mark.acceptance
LEASE_SECONDS = 2


def test_killed_worker_job_is_resumed_by_another(live_client, live_env, tmp_path):
    cluster = start_cluster({**live_env, "LEASE_SECONDS": str(LEASE_SECONDS), "NUM_WORKERS": "1"}, tmp_path)
    try:
        response = live_client.post("/api/v1/conversions", files={"file": ("crash.pdf", long_pdf("crash"), "application/pdf")})
        conversion_id = response.json()["id"]
        deadline = time.monotonic() + 60
        while Conversion.objects.get(pk=conversion_id).pages_done < 2:
            assert time.monotonic() < deadline, "the job never got going"
            time.sleep(0.05)
        victim = Conversion.objects.get(pk=conversion_id)
        os.kill(int(victim.worker_id.rsplit(":", 1)[1]), signal.SIGKILL)
        killed_at_pages = PageResult.objects.filter(conversion_id=conversion_id).count()

        time.sleep(LEASE_SECONDS + 1)
        assert Conversion.objects.get(pk=conversion_id).status == "running"  # nobody owns it, yet it "runs"
        assert services.requeue_expired_leases(lease_seconds=LEASE_SECONDS)["requeued"] == 1

        final = wait_for_status(live_client, conversion_id)
    finally:
        cluster.stop()
    assert final["status"] == "completed", final
    done = Conversion.objects.get(pk=conversion_id)
    assert done.attempts == 2 and done.worker_id != victim.worker_id
    pages = PageResult.objects.filter(conversion_id=conversion_id)
    assert pages.count() == done.pages_total
    # pages checkpointed before the kill were kept, not done again
    assert pages.filter(created_at__lt=done.started_at).count() >= killed_at_pages
