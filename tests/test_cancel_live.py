"""Cancelling a running job with a real qcluster: it stops before its next page, keeps the
pages it finished (served as a partial result), ends `cancelled`, and its socket is told.

The engine is dots.ocr against the stand-in vLLM server answering each page after a
delay, so the job is still running when the cancel arrives."""

import json
import threading
import time

import pytest
from websockets.sync.client import connect

from conversions.models import Conversion, PageResult
from tests.dotsocr_standin import DotsOcrStandin
from tests.live import FINISHED, start_cluster, wait_for_status
from tests.test_progress_live import PAGES, long_pdf

pytestmark = pytest.mark.acceptance
SECONDS_PER_PAGE = 1.0


@pytest.fixture
def slow_engine():
    with DotsOcrStandin(latency=SECONDS_PER_PAGE) as server:
        yield server


@pytest.fixture
def slow_cluster(live_env, slow_engine, tmp_path):
    """live_cluster's qcluster, its engine pointed at the slow stand-in, one page at a time."""
    env = {**live_env, "OCR_ENGINE_URLS": slow_engine.url, "NUM_WORKERS": "1", "NUM_THREAD": "1", "DPI": "72"}
    cluster = start_cluster(env, tmp_path)
    yield cluster
    cluster.stop()


def listen(url: str, events: list, connected: threading.Event) -> None:
    """Every event on a conversion's socket until the job ends."""
    with connect(url, open_timeout=10) as socket:
        connected.set()
        while True:
            event = json.loads(socket.recv(timeout=60))
            events.append(event)
            if event.get("status") in FINISHED:
                return


def wait_for_pages(conversion_id: str, pages: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while Conversion.objects.get(pk=conversion_id).pages_done < pages:
        assert time.monotonic() < deadline, "the job never got going"
        time.sleep(0.05)


def test_cancel_stops_a_running_job_before_its_next_page(slow_cluster, slow_engine, live_client, live_web):
    response = live_client.post(
        "/api/v1/conversions",
        data={"engine": "dotsocr"},
        files={"file": ("slow.pdf", long_pdf("slow"), "application/pdf")},
    )
    assert response.status_code == 201, response.text
    conversion_id = response.json()["id"]
    events, connected = [], threading.Event()
    socket_url = f"{live_web.replace('http', 'ws')}/ws/v1/conversions/{conversion_id}"
    listener = threading.Thread(target=listen, args=(socket_url, events, connected))
    listener.start()
    assert connected.wait(10)
    wait_for_pages(conversion_id, 2)

    cancel = live_client.post(f"/api/v1/conversions/{conversion_id}/cancel")
    done_when_asked = PageResult.objects.filter(conversion_id=conversion_id).count()
    assert cancel.status_code == 200 and cancel.json()["status"] == "running"  # it stops at a page boundary

    final = wait_for_status(live_client, conversion_id, statuses=("cancelled",), timeout=60)
    listener.join(timeout=30)
    conversion = Conversion.objects.get(pk=conversion_id)
    kept = PageResult.objects.filter(conversion_id=conversion_id)
    # The page being read when the cancel came may finish; no page after it starts.
    assert done_when_asked <= kept.count() <= done_when_asked + 1
    assert conversion.pages_done == kept.count() < conversion.pages_total == PAGES
    assert final["message"] == "Conversion cancelled" and conversion.finished_at is not None
    requests_when_settled = len(slow_engine.requests)
    time.sleep(3 * SECONDS_PER_PAGE)  # a worker that had not stopped would read another page by now
    assert kept.count() == conversion.pages_done and len(slow_engine.requests) == requests_when_settled
    assert not kept.filter(created_at__gt=conversion.finished_at).exists()

    # The finished pages are kept and served as a partial result.
    pages = live_client.get(f"/api/v1/conversions/{conversion_id}/pages").json()
    assert pages["status"] == "cancelled" and pages["complete"] is False
    assert [page["page_no"] for page in pages["pages"]] == list(range(conversion.pages_done))
    assert all(page["markdown"] for page in pages["pages"])

    assert not listener.is_alive()
    assert events[-1]["status"] == "cancelled" and events[-1]["error"] == "Conversion cancelled"
    assert "Cancelling..." in [event["message"] for event in events]
