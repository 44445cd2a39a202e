"""The management commands people use in a terminal."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from conversions.models import Conversion
from tests.conftest import ENCRYPTED, FOUR_PAGES, ONE_PAGE


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_convert_sync_runs_in_process_and_prints_output_paths(db, settings):
    out, _ = run("convert", str(FOUR_PAGES), str(ONE_PAGE), "--sync")
    assert out.count("queued as") == 2 and out.count("completed -> ") == 2
    assert Conversion.objects.filter(status="completed").count() == 2
    assert str(settings.OUTPUT_DIR) in out


def test_convert_refuses_bad_files_with_the_reason(db):
    with pytest.raises(CommandError, match="password"):
        run("convert", str(ENCRYPTED))
    with pytest.raises(CommandError, match="no such file"):
        run("convert", "/nonexistent.pdf")


def test_convert_without_wait_only_queues(db):
    out, _ = run("convert", str(ONE_PAGE), "--priority", "5")
    assert Conversion.objects.get().status == "queued" and Conversion.objects.get().priority == 5
    assert "completed" not in out


def test_queue_shows_counts_and_the_next_jobs_in_order(db):
    run("convert", str(ONE_PAGE))
    run("convert", str(ONE_PAGE), "--priority", "9")
    out, _ = run("queue")
    assert out.startswith("queued 2  running 0")
    lines = [line for line in out.splitlines() if line.startswith("  queued ")]
    assert "p=9" in lines[0] and "p=0" in lines[1]


def test_queue_cancel_retry_prioritize(db):
    run("convert", str(ONE_PAGE))
    conversion = Conversion.objects.get()
    assert "priority 3" in run("queue", "prioritize", str(conversion.pk), "3")[0]
    assert "cancelled" in run("queue", "cancel", str(conversion.pk))[0]
    assert "queued" in run("queue", "retry", str(conversion.pk))[0]
    with pytest.raises(CommandError, match="only failed or cancelled"):
        run("queue", "retry", str(conversion.pk))
    with pytest.raises(CommandError, match="not found"):
        run("queue", "cancel", "00000000-0000-0000-0000-000000000000")


@pytest.mark.acceptance
def test_convert_wait_follows_jobs_run_by_a_real_cluster(live_cluster, live_env, settings, transactional_db):
    # The local storage backend is shared by the processes that share its DATA_DIR.
    settings.DATA_DIR = Path(live_env["DATA_DIR"])
    out, _ = run("convert", str(FOUR_PAGES), "--wait", "--timeout", "90")
    assert "completed -> " in out
    assert Conversion.objects.get().status == "completed"


# --- convert --sync runs the job it queued, by its id (issue 21) ------------------------------


@pytest.fixture
def another_users_job(db, make_document):
    """A queued job of another user that the worker's own choice would take first (higher
    priority, older)."""
    from django.contrib.auth import get_user_model

    from conversions import services

    alice = get_user_model().objects.create_user("alice")
    return services.create_conversion(document=make_document(ONE_PAGE), owner=alice, priority=10, engine="noop")


def content_bomb(path, inflated_mb: int):
    """A one-page PDF whose page content inflates to ``inflated_mb`` MB: accepted at upload,
    its job fails on that page (MAX_PAGE_CONTENT_MB)."""
    import pymupdf

    document = pymupdf.open()
    page = document.new_page()
    page.insert_text((72, 72), "a page that inflates")
    [xref] = page.get_contents()
    document.update_stream(xref, document.xref_stream(xref) + b"\n%" + b" " * (inflated_mb * 1024 * 1024) + b"\n")
    document.save(path, deflate=True)
    return path


def test_convert_sync_runs_its_own_job_and_leaves_another_users_queued(another_users_job):
    out, _ = run("convert", str(ONE_PAGE), "--sync", "--engine", "noop")
    own = Conversion.objects.exclude(pk=another_users_job.pk).get()
    assert own.status == "completed" and "completed -> " in out
    other = Conversion.objects.get(pk=another_users_job.pk)
    assert other.status == "queued" and other.attempts == 0 and other.worker_id == ""


def test_convert_sync_exits_non_zero_when_its_job_fails(another_users_job, settings, tmp_path):
    settings.MAX_PAGE_CONTENT_MB = 1
    with pytest.raises(CommandError, match="did not complete"):
        run("convert", str(content_bomb(tmp_path / "bomb.pdf", inflated_mb=3)), "--sync", "--engine", "textlayer")
    own = Conversion.objects.exclude(pk=another_users_job.pk).get()
    assert own.status == "failed" and "decompression bomb" in own.error
    assert Conversion.objects.get(pk=another_users_job.pk).status == "queued"


def test_convert_sync_of_a_job_another_worker_took_first_exits_non_zero(db, monkeypatch):
    from conversions import services
    from workers import pipeline

    run_one = pipeline.run_one

    def taken_by_a_cluster(conversion_id):  # a cluster's worker claims it between queue and run
        services.claim_conversion(conversion_id=conversion_id, worker_id="elsewhere:1")
        return run_one(conversion_id)

    monkeypatch.setattr(pipeline, "run_one", taken_by_a_cluster)
    with pytest.raises(CommandError, match="did not complete"):
        run("convert", str(ONE_PAGE), "--sync")
    assert Conversion.objects.get().worker_id == "elsewhere:1"


def test_messages_queued_under_the_old_task_name_still_wake_a_worker(make_conversion):
    from django_q.worker import pydoc

    conversion = make_conversion(ONE_PAGE, engine="noop")
    old_entry = pydoc.locate("workers.tasks.run_conversion")  # how django-q2 finds a message's function
    assert old_entry("some other job's id") == "completed"
    assert Conversion.objects.get(pk=conversion.pk).status == "completed"
