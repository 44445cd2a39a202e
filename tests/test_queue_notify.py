"""Idle clusters wake on PostgreSQL NOTIFY of a committed task message (workers/broker.py,
conversions/notify.py), not at their next poll."""

import threading
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ

from tests.conftest import ONE_PAGE
from workers.broker import NotifiedOrmBroker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker():
    broker = NotifiedOrmBroker(list_key=settings.Q_CLUSTER["name"])
    assert broker._listening() is not None  # LISTEN before anything is queued
    yield broker
    broker._close_listener()


def test_the_configured_broker_is_the_notified_one():
    assert isinstance(get_broker(), NotifiedOrmBroker)


def test_a_committed_job_wakes_a_waiting_broker(broker, make_conversion):
    woken = []
    waiter = threading.Thread(target=lambda: woken.append(broker.wait_for_message(60)))
    waiter.start()
    make_conversion(ONE_PAGE)  # commits the job and its message
    waiter.join(70)
    assert woken == [True]  # notified: a poll would have returned False after 60 s
    assert broker.dequeue()  # and the message is there to take


def test_a_rolled_back_enqueue_wakes_nobody(broker, make_document, owner):
    from conversions import services

    document = make_document(ONE_PAGE)
    broker._drain()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_conversion(document=document, owner=owner)
        raise RuntimeError("the request failed after queueing")
    assert broker.wait_for_message(1.0) is False
    assert broker.dequeue() is None  # nothing to take (dequeue waited its poll and found none)


def test_a_message_is_taken_and_locked_in_one_statement_and_given_once_until_its_lock_passes(broker, make_conversion):
    """django-q2's ORM broker took a message in two round trips (read, then lock it); here
    one UPDATE ... RETURNING takes the oldest, and a message in hand is not given again
    until its lock (Conf.RETRY seconds) has passed."""
    make_conversion(ONE_PAGE)
    make_conversion(ONE_PAGE)
    oldest, newest = OrmQ.objects.order_by("id").values_list("id", flat=True)
    with CaptureQueriesContext(connection) as captured:
        taken = broker.take_messages(1)
    assert [message_id for message_id, _ in taken] == [oldest] and len(captured.captured_queries) == 1
    assert [message_id for message_id, _ in broker.take_messages(5)] == [newest]
    assert broker.take_messages(5) == []  # both in hand
    OrmQ.objects.filter(pk=oldest).update(lock=timezone.now() - timedelta(seconds=1))  # its worker died
    assert [message_id for message_id, _ in broker.take_messages(5)] == [oldest]


def test_taking_and_acknowledging_a_message_needs_no_health_check_round_trip(broker, make_conversion, monkeypatch):
    """django-q2 checks its connection (SELECT 1, CONN_HEALTH_CHECKS) before each message
    it takes and each it acknowledges: two more round trips per job. Here a dropped
    connection is found where it fails instead (next test)."""
    checks = []
    real_is_usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: checks.append(1) or real_is_usable())
    make_conversion(ONE_PAGE)
    ((message_id, _),) = broker.take_messages(1)
    broker.acknowledge(message_id)
    assert checks == [] and not OrmQ.objects.filter(pk=message_id).exists()


def drop_connection():
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    with psycopg.connect(**connection_params(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [backend])


def test_a_dropped_connection_costs_one_empty_take_and_no_lost_acknowledgement(broker, make_conversion):
    make_conversion(ONE_PAGE)
    drop_connection()
    assert broker.take_messages(1) == []  # the pusher goes on; django-q2's would sleep 10 s and end
    ((message_id, _),) = broker.take_messages(1)
    drop_connection()
    broker.acknowledge(message_id)
    assert not OrmQ.objects.filter(pk=message_id).exists()


def connection_params() -> dict:
    params = connection.get_connection_params()
    for django_only in ("cursor_factory", "context", "server_side_binding"):
        params.pop(django_only, None)
    return params


def test_a_database_that_stays_away_is_logged_now_and_then_not_at_every_poll(broker, make_conversion, caplog):
    make_conversion(ONE_PAGE)
    broker._warned_at.clear()
    for _ in range(3):
        drop_connection()
        assert broker.take_messages(1) == []
    assert len([record for record in caplog.records if "task messages not taken" in record.getMessage()]) == 1
