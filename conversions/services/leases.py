"""Leases and recovery: heartbeats, giving back the jobs of workers that are gone or
stopping, and waking queued jobs whose message was lost."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from conversions.models import Conversion
from conversions.services.submission import TASK_FUNCTION, _enqueue
from conversions.services.transitions import _finish, _transition

logger = logging.getLogger(__name__)
Status = Conversion.Status


def release_conversion(*, conversion: Conversion, message: str = "Waiting to resume") -> bool:
    """running -> queued, keeping checkpointed pages, so a later attempt resumes the job.

    Its task message is sent again with the release, in the same transaction.
    """
    with transaction.atomic():
        released = _transition(
            conversion.pk,
            sources={Status.RUNNING},
            target=Status.QUEUED,
            owned_by=conversion.worker_id,
            worker_id="",
            message=message,
        )
        if released:
            _enqueue(conversion.pk)
    return bool(released)


def renew_lease(*, conversion: Conversion) -> bool:
    """Heartbeat of a running job; False once this worker no longer owns it."""
    return bool(
        Conversion.objects.filter(pk=conversion.pk, status=Status.RUNNING, worker_id=conversion.worker_id).update(
            heartbeat_at=timezone.now()
        )
    )


def requeue_expired_leases(*, lease_seconds: int) -> dict[str, int]:
    """Give back jobs whose worker stopped renewing its lease (killed, OOM, host lost).

    A job with attempts left goes back to the queue (it resumes after its last
    checkpointed page); one that used them all fails with the reason. Each is one
    conditional UPDATE that also checks the lease is still expired, so a worker that
    comes back in time keeps its job.
    """
    cutoff = timezone.now() - timedelta(seconds=lease_seconds)
    outcome = {"requeued": 0, "failed": 0}
    for conversion in Conversion.objects.filter(status=Status.RUNNING, heartbeat_at__lt=cutoff):
        worker = conversion.worker_id or "unknown worker"
        result = _give_back(
            conversion, reason=f"the worker ({worker}) stopped responding", where={"heartbeat_at__lt": cutoff}
        )
        if result:
            outcome[result] += 1
    if outcome["requeued"] or outcome["failed"]:
        logger.warning("expired leases requeued=%s failed=%s", outcome["requeued"], outcome["failed"])
    return outcome


def requeue_jobs_of_dead_local_workers(*, host: str, is_running) -> dict[str, int]:
    """Give back at once the jobs of this host's worker processes that no longer exist.

    A worker killed by SIGKILL or the OOM killer leaves its job `running`; the lease
    reaper would give it back after LEASE_SECONDS. A new worker process on the same
    host (django-q2 replaces the dead one; a restarted cluster starts fresh ones) can
    tell at once: the pid in the job's worker id is gone. ``is_running(pid)`` answers
    that. Worker ids are "<host>:<pid>", so hosts must have distinct names.
    """
    outcome = {"requeued": 0, "failed": 0}
    for conversion in Conversion.objects.filter(status=Status.RUNNING, worker_id__startswith=f"{host}:"):
        pid = conversion.worker_id.rsplit(":", 1)[1]
        if not pid.isdigit() or is_running(int(pid)):
            continue
        result = _give_back(
            conversion, reason=f"its worker ({conversion.worker_id}) died", where={"worker_id": conversion.worker_id}
        )
        if result:
            outcome[result] += 1
    if outcome["requeued"] or outcome["failed"]:
        logger.warning("jobs of dead workers requeued=%s failed=%s", outcome["requeued"], outcome["failed"])
    return outcome


def _give_back(conversion: Conversion, *, reason: str, where: dict) -> str | None:
    """A running job whose worker is gone: back to the queue, or failed once it used its
    attempts. None if it changed meanwhile (``where`` no longer holds)."""
    with transaction.atomic():
        if conversion.attempts >= conversion.max_attempts:
            error = f"Gave up after {conversion.attempts} attempts: {reason}."
            if _finish(conversion, Status.FAILED, where=where, error=error, message=f"Conversion failed: {error}"):
                return "failed"
        elif _transition(
            conversion.pk,
            sources={Status.RUNNING},
            target=Status.QUEUED,
            owned_by=conversion.worker_id,
            where=where,
            worker_id="",
            message=f"Requeued: {reason}",
        ):
            _enqueue(conversion.pk)
            return "requeued"
    return None


def wake_stranded_jobs() -> int:
    """Send wake-up messages for queued jobs that have none waiting.

    Every path that queues a job sends one in the same transaction, but a message can
    still be spent without a claim: a worker killed between taking it and claiming, or
    one stopped before it started. Such a message comes back only after Q_CLUSTER
    `retry` (hours). Run from the reaper, this bounds that wait to a minute. Messages
    are only wake-ups, so a spare one is harmless (it claims nothing).
    """
    from django_q.models import OrmQ

    waiting = OrmQ.objects.filter(key=settings.Q_CLUSTER["name"], lock__lte=timezone.now()).count()
    queued = Conversion.objects.filter(status=Status.QUEUED).count()
    missing = min(queued - waiting, settings.NUM_WORKERS * 4)  # enough to wake every worker
    for _ in range(max(0, missing)):
        async_task(TASK_FUNCTION, "wake-up", task_name="wake-up")
    if missing > 0:
        logger.warning("queued=%s waiting messages=%s: sent %s wake-ups", queued, waiting, missing)
    return max(0, missing)
