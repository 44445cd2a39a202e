"""Idle clusters wake on PostgreSQL NOTIFY of a committed task message (workers/broker.py,
conversions/notify.py), not at their next poll."""

import threading

import pytest
from django.conf import settings
from django.db import transaction
from django_q.brokers import get_broker

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
