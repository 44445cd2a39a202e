"""Per-page and per-job time limits: a stuck page fails the job naming the page, a job
past its limit fails with the reason; neither waits forever."""

import threading
import time

import pytest

from conversions.models import Conversion, PageResult
from tests.conftest import FOUR_PAGES, ONE_PAGE
from workers import pipeline, shutdown
from workers.ocr.textlayer import TextLayerEngine


def slow_pages(monkeypatch, seconds_by_page: dict[int, float], default: float = 0.0):
    original = TextLayerEngine.recognize

    def recognize(self, page, *, prompt_mode):
        time.sleep(seconds_by_page.get(page.number, default))
        return original(self, page, prompt_mode=prompt_mode)

    monkeypatch.setattr(TextLayerEngine, "recognize", recognize)


def test_a_stuck_page_fails_the_job_naming_the_page_and_ends_the_worker(make_conversion, settings, monkeypatch):
    monkeypatch.setattr(shutdown, "exit_worker_process", lambda: (_ for _ in ()).throw(SystemExit(0)))
    settings.PAGE_TIMEOUT_SECONDS = 1
    slow_pages(monkeypatch, {2: 4.0})
    conversion = make_conversion(FOUR_PAGES, engine="textlayer")

    # The stuck thread cannot be stopped, so the worker process ends after recording the
    # failure and django-q2 starts a fresh one.
    with pytest.raises(SystemExit):
        pipeline.run_conversion(str(conversion.pk))

    failed = Conversion.objects.get(pk=conversion.pk)
    assert failed.status == "failed"
    assert failed.error == "Page 3 did not finish within 1 s (PAGE_TIMEOUT_SECONDS)."
    assert sorted(PageResult.objects.filter(conversion=conversion).values_list("page_no", flat=True)) == [0, 1]
    assert not (settings.OUTPUT_DIR / str(conversion.pk)).exists()


def test_a_job_past_its_time_limit_fails_with_the_reason(make_conversion, settings, monkeypatch):
    settings.JOB_TIMEOUT_SECONDS = 1
    slow_pages(monkeypatch, {}, default=0.6)
    conversion = make_conversion(FOUR_PAGES, engine="textlayer")

    assert pipeline.run_conversion(str(conversion.pk)) == "failed"

    failed = Conversion.objects.get(pk=conversion.pk)
    assert failed.status == "failed"
    assert "took longer than its limit of 1 s (JOB_TIMEOUT_SECONDS)" in failed.error
    assert 0 < failed.pages_done < 4
    assert not (settings.OUTPUT_DIR / str(conversion.pk)).exists()


def test_pages_within_their_limits_complete(make_conversion, settings, monkeypatch):
    settings.PAGE_TIMEOUT_SECONDS = 5
    slow_pages(monkeypatch, {}, default=0.1)
    conversion = make_conversion(FOUR_PAGES, engine="textlayer")
    assert pipeline.run_conversion(str(conversion.pk)) == "completed"


def test_a_stuck_page_keeps_its_thread_from_the_next_job(make_conversion, settings, monkeypatch):
    """Page threads are kept from job to job (workers/pages.py page_pool), except those of
    a job that left a page behind: the next job's pages must not wait behind a stuck one
    (here it would time out too)."""
    monkeypatch.setattr(shutdown, "exit_worker_process", lambda: None)  # stay, as `convert --sync` does
    settings.PAGE_TIMEOUT_SECONDS = 1
    stuck = threading.Event()
    original = TextLayerEngine.recognize

    calls = []

    def recognize(self, page, *, prompt_mode):
        calls.append(page.number)
        if len(calls) == 1:  # the first job's page never ends (until the test is over)
            stuck.wait(30)
        return original(self, page, prompt_mode=prompt_mode)

    monkeypatch.setattr(TextLayerEngine, "recognize", recognize)
    try:
        first = make_conversion(ONE_PAGE, engine="textlayer")
        assert pipeline.run_one(first.pk) == "failed"
        second = make_conversion(ONE_PAGE, engine="textlayer")
        assert pipeline.run_one(second.pk) == "completed"
    finally:
        stuck.set()


def test_jobs_of_one_process_share_their_page_threads(make_conversion, monkeypatch):
    original = TextLayerEngine.recognize
    readers = set()

    def recognize(self, page, *, prompt_mode):
        readers.add(threading.get_native_id())  # thread ids are never reused soon
        return original(self, page, prompt_mode=prompt_mode)

    monkeypatch.setattr(TextLayerEngine, "recognize", recognize)
    for _ in range(3):
        conversion = make_conversion(ONE_PAGE, engine="textlayer")
        assert pipeline.run_one(conversion.pk) == "completed"
    assert len(readers) == 1 and threading.get_native_id() not in readers
