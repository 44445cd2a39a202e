"""Graceful shutdown inside a worker process: SIGTERM while a job runs lets the page in
flight finish, checkpoints it and gives the job back to the queue; the next attempt
resumes after it."""

import os
import signal

import pytest
from django_q.models import OrmQ

from conversions.models import Conversion, PageResult
from tests.conftest import FOUR_PAGES
from workers import pipeline, shutdown


@pytest.fixture(autouse=True)
def worker_exit(monkeypatch):
    """The worker process would end here (os._exit); the test process must not: the
    real exit is covered by tests/test_shutdown_live.py."""

    def exit_worker_process():
        raise SystemExit(0)

    monkeypatch.setattr(shutdown, "exit_worker_process", exit_worker_process)


@pytest.fixture
def sigterm_handler():
    """Our worker handler installed for the test, pytest's restored after it."""
    previous = signal.getsignal(signal.SIGTERM)
    shutdown.install()
    yield
    signal.signal(signal.SIGTERM, previous)
    shutdown.requested.clear()
    shutdown._exiting.clear()


def test_sigterm_while_busy_asks_the_job_to_stop(sigterm_handler):
    os.kill(os.getpid(), signal.SIGTERM)
    assert shutdown.requested.is_set()


def test_sigterm_while_waiting_for_a_task_exits_at_once(sigterm_handler):
    with pytest.raises(SystemExit), shutdown.waiting_for_task():
        os.kill(os.getpid(), signal.SIGTERM)
    assert not shutdown.requested.is_set()


def test_a_repeated_sigterm_while_busy_changes_nothing(sigterm_handler):
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGTERM)  # from the group and from the sentinel
    assert shutdown.requested.is_set()


def test_sigterm_during_a_database_commit_does_not_interrupt_it(sigterm_handler, make_conversion):
    """A claim's COMMIT must not be cut by SystemExit (it was, and psycopg turned the
    exit into an error the worker survived, so it went on claiming jobs)."""
    from django.db import transaction

    conversion = make_conversion(engine="noop")
    with transaction.atomic():
        Conversion.objects.filter(pk=conversion.pk).update(priority=7)
        os.kill(os.getpid(), signal.SIGTERM)  # lands inside the transaction
    assert Conversion.objects.get(pk=conversion.pk).priority == 7
    assert shutdown.requested.is_set()


def test_a_worker_asked_to_stop_takes_no_further_task(sigterm_handler):
    os.kill(os.getpid(), signal.SIGTERM)  # while a job ran
    with pytest.raises(SystemExit), shutdown.waiting_for_task():
        pytest.fail("the worker read the task queue after a stop request")


def test_stop_request_releases_the_job_after_its_checkpoints(make_conversion, monkeypatch, sigterm_handler):
    original = pipeline.PageWriter.checkpoint

    def stop_requested_during_second_page(self, page, recognized):
        if page.number == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives while page 2 is being written
        original(self, page, recognized)

    monkeypatch.setattr(pipeline.PageWriter, "checkpoint", stop_requested_during_second_page)
    conversion = make_conversion(FOUR_PAGES, engine="textlayer")
    messages_before = OrmQ.objects.count()

    with pytest.raises(SystemExit):  # the worker process ends once the job is released
        pipeline.run_conversion(str(conversion.pk))

    released = Conversion.objects.get(pk=conversion.pk)
    assert released.status == "queued" and released.worker_id == ""
    assert released.message == "Waiting to resume (its worker was stopped)"
    kept = dict(PageResult.objects.filter(conversion=conversion).values_list("page_no", "pk"))
    assert sorted(kept) == [0, 1]
    assert OrmQ.objects.count() == messages_before + 1  # a new wake-up for the released job

    shutdown.requested.clear()
    monkeypatch.setattr(pipeline.PageWriter, "checkpoint", original)
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    pages = dict(PageResult.objects.filter(conversion=conversion).values_list("page_no", "pk"))
    assert sorted(pages) == [0, 1, 2, 3]
    assert {page: pages[page] for page in kept} == kept  # resumed: the first two were not redone


def test_the_django_q_patches_refuse_another_django_q2_version(monkeypatch):
    from dotsocr_site.patches import UnsupportedVersion
    from dotsocr_site.patches import django_q as patches

    monkeypatch.setattr(patches, "version", lambda name: "1.12.0")
    with pytest.raises(UnsupportedVersion, match="written for django-q2 1.11.1, not 1.12.0"):
        patches.install()
