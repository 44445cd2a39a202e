"""Transactional enqueue: the Conversion row and its django-q2 message commit together."""

import pytest
from django.db import transaction
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from conversions import services
from conversions.models import Conversion
from workers import pipeline


class Rollback(Exception):
    pass


def messages():
    return [SignedPackage.loads(message.payload) for message in OrmQ.objects.all()]


def test_message_payload_is_only_the_conversion_id(make_conversion):
    conversion = make_conversion()
    [task] = messages()
    assert task["func"] == "workers.tasks.wake_worker"
    assert task["args"] == (str(conversion.pk),)
    assert task["kwargs"] == {}


def test_rolled_back_create_leaves_neither_job_nor_message(make_document, owner):
    document = make_document()
    with pytest.raises(Rollback), transaction.atomic():
        services.create_conversion(document=document, owner=owner)
        assert Conversion.objects.count() == 1 and OrmQ.objects.count() == 1
        raise Rollback()
    assert Conversion.objects.count() == 0
    assert OrmQ.objects.count() == 0


def test_failed_message_write_rolls_back_the_job(make_document, owner, monkeypatch):
    document = make_document()

    def broken_enqueue(*args, **kwargs):
        raise RuntimeError("broker down")

    monkeypatch.setattr(services.submission, "async_task", broken_enqueue)
    with pytest.raises(RuntimeError):
        services.create_conversion(document=document, owner=owner)
    assert Conversion.objects.count() == 0


def test_second_delivery_of_same_job_is_a_noop(make_conversion):
    conversion = make_conversion()
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    first = Conversion.objects.get(pk=conversion.pk)
    assert pipeline.run_conversion(str(conversion.pk)) == "skipped"
    again = Conversion.objects.get(pk=conversion.pk)
    assert again.status == "completed"
    assert again.attempts == first.attempts == 1
    assert again.finished_at == first.finished_at
    assert again.pages.count() == 4


def test_delivery_of_a_cancelled_job_is_a_noop(make_conversion):
    conversion = make_conversion()
    services.cancel_conversion(conversion=conversion)
    assert pipeline.run_conversion(str(conversion.pk)) == "skipped"
    assert Conversion.objects.get(pk=conversion.pk).pages.count() == 0
