"""Requests from users about a job: cancel, retry, re-prioritise."""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from conversions.exceptions import IllegalTransition
from conversions.models import Conversion
from conversions.services.submission import _enqueue, _lock_owner, ensure_queue_room
from conversions.services.transitions import _transition
from workers import progress

Status = Conversion.Status


def cancel_conversion(*, conversion: Conversion) -> Conversion:
    """Cancel a job: a queued one at once, a running one before its next page.

    Raises IllegalTransition for a job that has already finished.
    """
    if _transition(
        conversion.pk,
        sources={Status.QUEUED},
        target=Status.CANCELLED,
        cancel_requested=True,
        message="Conversion cancelled",
        finished_at=timezone.now(),
    ):
        return Conversion.objects.get(pk=conversion.pk)
    if Conversion.objects.filter(pk=conversion.pk, status=Status.RUNNING).update(
        cancel_requested=True, message="Cancelling...", updated_at=timezone.now(), event_seq=F("event_seq") + 1
    ):
        progress.publish_after_commit(conversion.pk)
        return Conversion.objects.get(pk=conversion.pk)
    current = Conversion.objects.get(pk=conversion.pk)
    raise IllegalTransition(f"Conversion {conversion.pk} is {current.status} and cannot be cancelled.")


def retry_conversion(*, conversion: Conversion, max_queued: int = 0) -> Conversion:
    """failed | cancelled -> queued, keeping the pages already checkpointed (the retry
    resumes after them). Raises IllegalTransition for a job in another state, QueueFull
    when its owner has ``max_queued`` jobs waiting already (0: no cap)."""
    if conversion.expired_at is not None:
        raise IllegalTransition(f"Conversion {conversion.pk} expired (RESULT_TTL_HOURS): its files were removed.")
    with transaction.atomic():
        if max_queued and conversion.status in (Status.FAILED, Status.CANCELLED):
            _lock_owner(conversion.owner)
            ensure_queue_room(owner=conversion.owner, max_queued=max_queued)
        if not _transition(
            conversion.pk,
            sources={Status.FAILED, Status.CANCELLED},
            target=Status.QUEUED,
            worker_id="",
            error="",
            cancel_requested=False,
            finished_at=None,
            max_attempts=F("attempts") + F("max_attempts"),  # a fresh allowance of attempts
            message="Queued again",
        ):
            current = Conversion.objects.get(pk=conversion.pk)
            raise IllegalTransition(
                f"Conversion {conversion.pk} is {current.status}; only failed or cancelled conversions can be retried."
            )
        _enqueue(conversion.pk)
    return Conversion.objects.select_related("document").get(pk=conversion.pk)


def set_priority(*, conversion: Conversion, priority: int) -> Conversion:
    """Re-prioritise a job that has not finished (it matters while it waits)."""
    changed = Conversion.objects.filter(pk=conversion.pk, status__in=[Status.QUEUED, Status.RUNNING]).update(
        priority=priority, updated_at=timezone.now(), event_seq=F("event_seq") + 1
    )
    if not changed:
        current = Conversion.objects.get(pk=conversion.pk)
        raise IllegalTransition(f"Conversion {conversion.pk} is {current.status}; its priority can no longer change.")
    progress.publish_after_commit(conversion.pk)
    return Conversion.objects.select_related("document").get(pk=conversion.pk)
