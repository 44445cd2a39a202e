"""The management commands people use in a terminal."""

from io import StringIO

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
def test_convert_wait_follows_jobs_run_by_a_real_cluster(live_cluster, transactional_db):
    out, _ = run("convert", str(FOUR_PAGES), "--wait", "--timeout", "90")
    assert "completed -> " in out
    assert Conversion.objects.get().status == "completed"
