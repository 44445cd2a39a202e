"""Leases: a running job renews its lease; the reaper gives back jobs whose worker died."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from conversions import services
from conversions.models import Conversion
from tests.conftest import FOUR_PAGES, ONE_PAGE
from workers import pipeline, tasks


def expire(conversion, seconds=3600):
    Conversion.objects.filter(pk=conversion.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def test_expired_job_is_requeued_and_resumes_after_its_checkpoints(make_conversion):
    from workers.ocr.base import PageOcr

    conversion = make_conversion()
    running = services.claim_conversion(conversion_id=conversion.pk, worker_id="killed-worker:1")
    services.checkpoint_page(
        conversion=running,
        page_no=0,
        page=PageOcr(cells=[], engine="before-the-crash"),
        markdown="kept",
        markdown_nohf="kept",
        duration_ms=1,
    )
    expire(conversion)
    OrmQ.objects.all().delete()  # the first message was consumed by the dead worker

    assert services.requeue_expired_leases(lease_seconds=60) == {"requeued": 1, "failed": 0}
    requeued = Conversion.objects.get(pk=conversion.pk)
    assert requeued.status == "queued" and requeued.worker_id == ""
    assert "stopped responding" in requeued.message
    assert OrmQ.objects.count() == 1  # a new message, so a worker will pick it up

    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    done = Conversion.objects.get(pk=conversion.pk)
    assert done.attempts == 2 and done.pages.get(page_no=0).engine == "before-the-crash"


def test_job_past_max_attempts_fails_with_the_reason(make_conversion):
    conversion = make_conversion()
    Conversion.objects.filter(pk=conversion.pk).update(max_attempts=1)
    services.claim_conversion(conversion_id=conversion.pk, worker_id="w:1")
    expire(conversion)
    assert services.requeue_expired_leases(lease_seconds=60) == {"requeued": 0, "failed": 1}
    failed = Conversion.objects.get(pk=conversion.pk)
    assert failed.status == "failed" and "stopped responding" in failed.error and "1 attempts" in failed.error


def test_live_lease_is_left_alone(make_conversion):
    conversion = make_conversion()
    services.claim_conversion(conversion_id=conversion.pk, worker_id="w:1")
    assert services.requeue_expired_leases(lease_seconds=60) == {"requeued": 0, "failed": 0}
    assert Conversion.objects.get(pk=conversion.pk).status == "running"


@pytest.mark.django_db(transaction=True)
def test_heartbeat_renews_the_lease_while_a_page_runs(make_conversion, settings, monkeypatch):
    import time

    from workers.ocr.textlayer import TextLayerEngine

    settings.LEASE_SECONDS = 0.4  # beats every 0.1 s
    original = TextLayerEngine.recognize
    beats = []

    def slow_page(self, page, *, prompt_mode):
        before = Conversion.objects.get(pk=conversion.pk).heartbeat_at
        time.sleep(0.5)
        beats.append(Conversion.objects.get(pk=conversion.pk).heartbeat_at > before)
        return original(self, page, prompt_mode=prompt_mode)

    monkeypatch.setattr(TextLayerEngine, "recognize", slow_page)
    conversion = make_conversion()
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"
    assert beats and all(beats)


def test_the_reaper_is_scheduled_every_minute(db):
    schedule = Schedule.objects.get(name="dotsocr-lease-reaper")
    assert schedule.func == "workers.tasks.reap_expired_leases"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)
    assert tasks.reap_expired_leases() == {"requeued": 0, "failed": 0, "woken": 0}


def test_the_reaper_wakes_queued_jobs_whose_message_was_spent(make_conversion, settings):
    conversion = make_conversion(FOUR_PAGES)
    OrmQ.objects.all().delete()  # its message was taken by a worker that died before claiming

    assert tasks.reap_expired_leases() == {"requeued": 0, "failed": 0, "woken": 1}
    assert OrmQ.objects.count() == 1
    assert tasks.reap_expired_leases()["woken"] == 0  # one waiting message is enough

    assert pipeline.run_conversion("wake-up") == "completed"
    assert Conversion.objects.get(pk=conversion.pk).status == "completed"


def claimed_by(conversion, worker_id: str) -> Conversion:
    Conversion.objects.filter(pk=conversion.pk).update(
        status="running", worker_id=worker_id, attempts=1, heartbeat_at=timezone.now()
    )
    return Conversion.objects.get(pk=conversion.pk)


def test_jobs_of_dead_local_workers_are_given_back_at_once(make_conversion):
    dead = claimed_by(make_conversion(FOUR_PAGES), "web-1:4242")
    alive = claimed_by(make_conversion(FOUR_PAGES), "web-1:77")
    elsewhere = claimed_by(make_conversion(FOUR_PAGES), "web-2:4242")

    outcome = services.requeue_jobs_of_dead_local_workers(host="web-1", is_running=lambda pid: pid == 77)

    assert outcome == {"requeued": 1, "failed": 0}
    requeued = Conversion.objects.get(pk=dead.pk)
    assert requeued.status == "queued" and requeued.message == "Requeued: its worker (web-1:4242) died"
    assert Conversion.objects.get(pk=alive.pk).status == "running"  # its lease is fresh: not ours to judge
    assert Conversion.objects.get(pk=elsewhere.pk).status == "running"  # another host's pid means nothing here


def test_a_dead_workers_job_without_attempts_left_fails(make_conversion):
    conversion = claimed_by(make_conversion(FOUR_PAGES), "web-1:4242")
    Conversion.objects.filter(pk=conversion.pk).update(max_attempts=1)
    assert services.requeue_jobs_of_dead_local_workers(host="web-1", is_running=lambda pid: False)["failed"] == 1
    failed = Conversion.objects.get(pk=conversion.pk)
    assert failed.status == "failed" and failed.error == "Gave up after 1 attempts: its worker (web-1:4242) died."


def pages_that_see_whether_their_lease_was_renewed(monkeypatch) -> list[bool]:
    """Each page of the running job takes 0.5 s and then records whether the job's
    heartbeat_at moved meanwhile; the list of those answers, one per page."""
    import time

    from workers.ocr.textlayer import TextLayerEngine

    original = TextLayerEngine.recognize
    beats: list[bool] = []

    def slow_page(self, page, *, prompt_mode):
        running = Conversion.objects.get(status="running")
        time.sleep(0.5)
        beats.append(Conversion.objects.get(pk=running.pk).heartbeat_at > running.heartbeat_at)
        return original(self, page, prompt_mode=prompt_mode)

    monkeypatch.setattr(TextLayerEngine, "recognize", slow_page)
    return beats


@pytest.mark.django_db(transaction=True)
def test_one_heartbeat_thread_renews_each_job_of_a_process_in_turn(make_conversion, settings, monkeypatch):
    """The heartbeat thread is kept from job to job (workers/pipeline.py Heartbeat): it
    renews whichever job the process runs, and stops renewing one once it has ended."""
    import threading

    settings.LEASE_SECONDS = 0.4  # beats every 0.1 s
    beats = pages_that_see_whether_their_lease_was_renewed(monkeypatch)
    first, second = make_conversion(ONE_PAGE), make_conversion(ONE_PAGE)
    assert pipeline.run_one(first.pk) == "completed"
    thread = pipeline.heartbeat.thread
    ended = Conversion.objects.get(pk=first.pk).heartbeat_at
    assert pipeline.run_one(second.pk) == "completed"
    assert beats == [True, True]
    assert pipeline.heartbeat.thread is thread and thread is not None and thread.is_alive()
    assert [t for t in threading.enumerate() if t.name == "heartbeat"] == [thread]
    assert Conversion.objects.get(pk=first.pk).heartbeat_at == ended  # no beat after its end


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_that_hangs_in_a_beat_is_replaced_for_the_next_job(make_conversion, settings, monkeypatch):
    """A beat can hang (a connection lost without a reset): the next job of the process
    gets a heartbeat thread of its own, or the reaper would give it to another worker."""
    import threading

    settings.LEASE_SECONDS = 0.4  # beats every 0.1 s
    hang, renewals = threading.Event(), []
    real_renew = services.renew_lease

    def renew(*, conversion):
        renewals.append(conversion.pk)
        if len(renewals) == 1:
            hang.wait(10)  # the first beat never answers (until the test is over)
        return real_renew(conversion=conversion)

    monkeypatch.setattr(services, "renew_lease", renew)
    beats = pages_that_see_whether_their_lease_was_renewed(monkeypatch)
    first, second = make_conversion(ONE_PAGE), make_conversion(ONE_PAGE)
    try:
        assert pipeline.run_one(first.pk) == "completed"
        hung = pipeline.heartbeat.thread
        assert pipeline.run_one(second.pk) == "completed"
    finally:
        hang.set()
    assert beats == [False, True]  # the first job's only beat hung; the second was renewed
    assert pipeline.heartbeat.thread is not hung
