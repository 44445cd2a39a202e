"""The database drops every connection while jobs run (what a PostgreSQL restart or a
failover does to clients): workers reconnect, running jobs resume from their checkpoints,
queued ones still run, and the web keeps answering. Real qcluster and daphne; the
connections are cut with pg_terminate_backend, on this test's own database only."""

import threading
import time

import pytest
from django.db import OperationalError, connection

from conversions.models import Conversion
from tests.conftest import ONE_PAGE
from tests.dotsocr_standin import DotsOcrStandin
from tests.live import pdf_of, start_cluster, wait_for_status
from tests.test_progress_live import collect
from tests.test_queue_notify import drop_connection
from workers import pipeline, shutdown

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
        # Any message lost with a connection is resent by the reaper: its tick (30 s), then its interval (1 min).
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


@pytest.mark.django_db(transaction=True)
def test_a_wake_up_whose_connection_was_dropped_claims_on_a_new_one(make_conversion):
    """The message that woke the worker is spent whatever the claim does: a claim that
    failed on a connection the database dropped (a restart, or the cut above) left its
    job queued until the reaper's wake-up, a minute later. It is made again at once."""
    conversion = make_conversion(ONE_PAGE)
    drop_connection()
    assert pipeline.run_next_queued("wake-up") == "completed"
    assert Conversion.objects.get(pk=conversion.pk).status == "completed"


@pytest.fixture
def unreachable_database():
    """This process's connection dropped and every new one refused (a port nothing listens on)."""
    drop_connection()
    port = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = "9"  # discard: closed here
    yield
    connection.settings_dict["PORT"] = port
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_claim_waits_for_the_database_only_until_the_worker_is_asked_to_stop(unreachable_database, settings):
    settings.DB_RECONNECT_SECONDS = 60
    asked = threading.Timer(0.5, shutdown.requested.set)
    started = time.monotonic()
    asked.start()
    try:
        with pytest.raises(OperationalError):
            pipeline.claim_through_outage()
    finally:
        asked.cancel()
        shutdown.requested.clear()
    assert time.monotonic() - started < 0.5 + 2 * pipeline.STOP_CHECK_SECONDS  # not the 60 s


@pytest.mark.django_db(transaction=True)
def test_a_claim_gives_up_when_the_database_stays_away(unreachable_database, settings):
    settings.DB_RECONNECT_SECONDS = 1
    with pytest.raises(OperationalError):
        pipeline.claim_through_outage()
