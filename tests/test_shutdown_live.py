"""SIGTERM to a real qcluster while a job runs: the page in flight finishes, the job goes
back to the queue, the cluster exits promptly, and a new cluster finishes the job without
sending any page to the engine twice. Real qcluster; the engine is the dots.ocr stand-in
with a latency per page, so the job is mid-way when the signal lands."""

import os
import signal
import time

import pytest

from conversions.models import Conversion
from tests.dotsocr_standin import DotsOcrStandin
from tests.live import alive, pdf_of, process_tree, start_cluster, wait_for_status

pytestmark = pytest.mark.acceptance
PAGES = 8


@pytest.fixture
def standin():
    with DotsOcrStandin(latency=0.7) as server:
        yield server


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize("whom", ["cluster process", "process group"])
def test_sigterm_releases_the_running_job_and_a_new_cluster_finishes_it(whom, live_client, live_env, standin, tmp_path):
    env = {**live_env, "OCR_ENGINE_URLS": standin.url, "NUM_THREAD": "1", "NUM_WORKERS": "1", "DPI": "72"}
    cluster = start_cluster(env, tmp_path)
    response = live_client.post(
        "/api/v1/conversions",
        data={"engine": "dotsocr"},
        files={"file": ("scan.pdf", pdf_of(PAGES, "a long scan"), "application/pdf")},
    )
    assert response.status_code == 201, response.text
    conversion_id = response.json()["id"]
    wait_until(lambda: Conversion.objects.get(pk=conversion_id).pages_done >= 2, 60, "the job never got going")

    pids = process_tree(cluster.process.pid)
    if whom == "cluster process":  # `kill PID`, docker stop: only the main process hears it
        cluster.process.send_signal(signal.SIGTERM)
    else:  # systemd, Ctrl-C in a terminal: every process of the group hears it
        os.killpg(cluster.process.pid, signal.SIGTERM)
    signalled_at = time.monotonic()

    wait_until(lambda: not alive(pids), 30, f"cluster still running: {alive(pids)}\n{cluster.log_tail()}")
    stopped_after = time.monotonic() - signalled_at
    released = Conversion.objects.get(pk=conversion_id)
    assert released.status == "queued", (released.status, released.message, cluster.log_tail())
    assert released.message == "Waiting to resume (its worker was stopped)"
    assert 2 <= released.pages_done < PAGES
    assert stopped_after < 15  # one page in flight (0.7 s), not the rest of the job
    cluster.stop()

    second = start_cluster(env, tmp_path)
    try:
        final = wait_for_status(live_client, conversion_id)
    finally:
        second.stop()
    assert final["status"] == "completed", final
    assert final["pages_done"] == PAGES
    assert len(standin.requests) == PAGES  # no page went to the engine twice
