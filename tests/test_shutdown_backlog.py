"""A stop under load (issue 21): a backlog of one-page jobs, part of it already taken by
django-q2's pusher into the cluster's task queue, jobs running; then SIGTERM to the main
process, to the whole process group, or SIGINT. Every process of the cluster must be
gone within SHUTDOWN_GRACE_SECONDS + 10 s, no job may stay `running`, and a new cluster
runs every job to the end. Real qcluster, real PostgreSQL, the `noop` engine.

Before the fix the sentinel blocked for ever putting its "STOP" into the full task
queue (see dotsocr_site/patches/django_q.py)."""

import os
import signal
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count
from django.utils import timezone
from django_q.models import OrmQ

from conversions import services
from conversions.models import Conversion
from tests.live import alive, pdf_of, process_tree, start_cluster

pytestmark = pytest.mark.acceptance
GRACE_SECONDS = 5
# More than a stop can take: the pusher's workers^2 + 1 messages, the running jobs and
# the first completed ones, so a backlog is left queued (and run again after a restart).
BACKLOG = 24


def wait_until(predicate, timeout: float, what) -> float:
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout, what() if callable(what) else what
        time.sleep(0.05)
    return time.monotonic() - started


def queue_backlog(count: int) -> None:
    owner = services.default_owner()
    upload = SimpleUploadedFile("one-page.pdf", pdf_of(1, "backlog"), content_type="application/pdf")
    document = services.create_document(owner=owner, upload=upload, max_pages=10)
    for _ in range(count):
        services.create_conversion(document=document, owner=owner, engine="noop")


def prefetched_messages() -> int:
    """Messages a pusher has taken (locked until `retry`) and no worker has acknowledged."""
    return OrmQ.objects.filter(lock__gt=timezone.now()).count()


@pytest.mark.parametrize(
    "workers,how",
    [("1", "SIGTERM to the main process"), ("2", "SIGTERM to the process group"), ("2", "SIGINT to the main process")],
)
def test_stop_with_a_prefetched_backlog_ends_every_process_in_bounded_time(
    workers, how, live_env, transactional_db, tmp_path
):
    env = {**live_env, "NUM_WORKERS": workers, "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS)}
    cluster = start_cluster(env, tmp_path)
    try:
        queue_backlog(BACKLOG)
        # The pusher keeps workers^2 messages in the task queue and one in hand.
        wait_until(
            lambda: Conversion.objects.filter(status="completed").count() >= 2 and prefetched_messages() >= 2,
            90,
            lambda: f"the cluster did not get going:\n{cluster.log_tail()}",
        )
        pids = process_tree(cluster.process.pid)
        if how == "SIGTERM to the process group":
            os.killpg(cluster.process.pid, signal.SIGTERM)
        else:
            cluster.process.send_signal(signal.SIGINT if how.startswith("SIGINT") else signal.SIGTERM)

        stopped_after = wait_until(
            lambda: not alive(pids), GRACE_SECONDS + 10, lambda: f"still running: {alive(pids)}\n{cluster.log_tail()}"
        )
    finally:
        cluster.stop(timeout=1)
    assert not Conversion.objects.filter(status="running").exists()
    assert Conversion.objects.filter(status="queued").exists()  # the stop came with a backlog left
    print(f"{how}, {workers} worker(s): stopped in {stopped_after:.1f} s")

    if workers == "1":  # once: the jobs the stop left behind all run on the next start
        second = start_cluster({**env, "NUM_WORKERS": "2"}, tmp_path)
        try:
            wait_until(
                lambda: Conversion.objects.filter(status="completed").count() == BACKLOG,
                240,
                lambda: (
                    f"{dict(Conversion.objects.values_list('status').annotate(n=Count('pk')))} "
                    f"after a restart\n{second.log_tail()}"
                ),
            )
        finally:
            second.stop()


def test_a_cluster_whose_main_process_is_killed_stops_by_itself(live_env, transactional_db, tmp_path):
    """SIGKILL to qcluster's main process (the OOM killer, a careless `kill -9`): its
    sentinel notices and stops the cluster as a SIGTERM would; the workers release their
    jobs."""
    env = {**live_env, "NUM_WORKERS": "2", "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS)}
    cluster = start_cluster(env, tmp_path)
    try:
        queue_backlog(BACKLOG)
        wait_until(
            lambda: Conversion.objects.filter(status="completed").count() >= 2,
            90,
            lambda: f"the cluster did not get going:\n{cluster.log_tail()}",
        )
        pids = process_tree(cluster.process.pid)
        cluster.process.kill()
        wait_until(
            lambda: not alive(pids), GRACE_SECONDS + 10, lambda: f"still running: {alive(pids)}\n{cluster.log_tail()}"
        )
    finally:
        cluster.stop(timeout=1)
    assert not Conversion.objects.filter(status="running").exists()
    assert "stopped the cluster" in cluster.log_tail(80)  # an orderly stop, not a kill
