"""The database drops every connection while jobs run (what a PostgreSQL restart or a
failover does to clients): workers reconnect, running jobs resume from their checkpoints,
queued ones still run, and the web keeps answering. Real qcluster and daphne; the
connections are cut with pg_terminate_backend, on this test's own database only."""

import time

import pytest
from django.db import connection

from conversions.models import Conversion
from tests.dotsocr_standin import DotsOcrStandin
from tests.live import pdf_of, start_cluster, wait_for_status
from tests.test_progress_live import collect

pytestmark = pytest.mark.acceptance
PAGES = 8


@pytest.fixture
def standin():
    with DotsOcrStandin(latency=0.5) as server:
        yield server


def cut_every_other_connection() -> int:
    """Terminate every backend on this database but the test's own; how many were cut."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def submit(client, label: str, pages: int) -> str:
    response = client.post(
        "/api/v1/conversions",
        data={"engine": "dotsocr"},
        files={"file": (f"{label}.pdf", pdf_of(pages, label), "application/pdf")},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_jobs_survive_the_database_dropping_every_connection(live_client, live_env, standin, tmp_path):
    env = {**live_env, "OCR_ENGINE_URLS": standin.url, "NUM_THREAD": "1", "NUM_WORKERS": "2", "DPI": "72"}
    cluster = start_cluster(env, tmp_path)
    try:
        running = [submit(live_client, f"running-{n}", PAGES) for n in range(2)]
        deadline = time.monotonic() + 60
        while Conversion.objects.filter(pk__in=running, pages_done__gte=2).count() < 2:
            assert time.monotonic() < deadline, "the jobs never got going"
            time.sleep(0.05)

        assert cut_every_other_connection() > 0
        time.sleep(0.5)
        assert cut_every_other_connection() >= 0  # again, while they reconnect

        later = submit(live_client, "after-the-outage", PAGES)  # the web reconnects too
        events = []  # live events still flow from the workers through the web process
        # A claim that loses its connection claims again (test_claim_through_outage.py); a message
        # lost some other way (a take whose reply went with the connection) waits for the reaper's
        # wake-up: its tick (30 s), then its interval (1 min).
        url = live_client.base_url.copy_with(scheme="ws").join(f"/ws/v1/conversions/{later}")
        collect(str(url), events, timeout=150)
        finals = [wait_for_status(live_client, conversion_id, timeout=120) for conversion_id in [*running, later]]
    finally:
        cluster.stop()
    assert [final["status"] for final in finals] == ["completed"] * 3, (finals, cluster.log_tail(60))
    assert [final["pages_done"] for final in finals] == [PAGES] * 3
    assert events[-1]["status"] == "completed" and len({event["pages_done"] for event in events}) > 2, events
    for conversion_id in running:
        conversion = Conversion.objects.get(pk=conversion_id)
        assert conversion.pages.count() == PAGES
