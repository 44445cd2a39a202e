"""A wake-up whose claim loses its database connection (a restart, a failover) claims
again on a new one (workers/pipeline.py claim_through_outage): its message is spent
either way, and the job would otherwise wait for the reaper's wake-up, a minute later.
In-process, on this test's own database; test_database_faults.py cuts a live cluster's."""

import threading
import time

import pytest
from django.db import OperationalError, connection

from conversions import services
from conversions.models import Conversion
from tests.conftest import ONE_PAGE
from tests.test_queue_notify import drop_connection
from workers import pipeline, shutdown

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def unreachable_database():
    """This process's connection dropped and every new one refused (a port nothing listens on)."""
    drop_connection()
    port = connection.settings_dict["PORT"]
    connection.settings_dict["PORT"] = "9"  # discard: closed here
    yield
    connection.settings_dict["PORT"] = port
    connection.close()


@pytest.fixture
def claims(monkeypatch) -> list:
    """Each claim tried, in order."""
    tried = []
    real = services.claim_next

    def claim_next(**kwargs):
        tried.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(services, "claim_next", claim_next)
    return tried


def test_a_wake_up_whose_connection_was_dropped_claims_on_a_new_one(make_conversion):
    conversion = make_conversion(ONE_PAGE)
    drop_connection()
    assert pipeline.run_next_queued("wake-up") == "completed"
    assert Conversion.objects.get(pk=conversion.pk).status == "completed"


def test_a_claim_gives_up_when_the_database_stays_away(unreachable_database, claims, settings):
    settings.DB_RECONNECT_SECONDS = 2
    started = time.monotonic()
    with pytest.raises(OperationalError):
        pipeline.claim_through_outage()
    assert len(claims) > 1  # tried again, with pauses between (0.2 s, doubling)
    assert len(claims) < 10 and time.monotonic() - started < 2 + 5  # then gave up: not the default 60 s


def test_a_claim_waiting_for_the_database_stops_when_the_worker_is_asked_to(unreachable_database, settings):
    settings.DB_RECONNECT_SECONDS = 60
    asked = threading.Timer(1.0, shutdown.requested.set)
    started = time.monotonic()
    asked.start()
    try:
        with pytest.raises(OperationalError):
            pipeline.claim_through_outage()
    finally:
        asked.cancel()
        asked.join()
        shutdown.requested.clear()
    assert time.monotonic() - started < 1.0 + 5  # at the stop (a pause ends early), not after 60 s


def test_a_statement_that_failed_on_a_live_connection_is_not_tried_again(monkeypatch, claims):
    """A timeout or a deadlock is not an outage: retrying it would only load the database."""

    def timed_out(**kwargs):
        claims.append(kwargs)
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 1")
            try:
                cursor.execute("SELECT pg_sleep(1)")  # canceled after 1 ms
            finally:
                cursor.execute("RESET statement_timeout")

    monkeypatch.setattr(services, "claim_next", timed_out)
    with pytest.raises(OperationalError):
        pipeline.claim_through_outage()
    assert len(claims) == 1
