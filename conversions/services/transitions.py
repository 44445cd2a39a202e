"""The conversion status machine and the claim (HackSoft style: one function per use case).

The conversion status machine lives here and nowhere else::

    queued -> running -> completed | failed | cancelled
    queued -> cancelled
    running -> queued            (lease expiry, release on shutdown)
    failed | cancelled -> queued (retry)

Each transition is one conditional UPDATE (``... WHERE id = %s AND status IN (...)``), so
two workers can never both own a job and a second delivery of a message is a no-op.
"""

import contextlib
import os
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Min, Q
from django.utils import timezone

from conversions import progress, webhooks
from conversions.claiming import claim_in_one_statement
from conversions.exceptions import IllegalTransition
from conversions.models import Conversion
from conversions.returning import update_returning

Status = Conversion.Status

ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    Status.QUEUED: {Status.RUNNING, Status.CANCELLED},
    Status.RUNNING: {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.QUEUED},
    Status.FAILED: {Status.QUEUED},
    Status.CANCELLED: {Status.QUEUED},
    Status.COMPLETED: set(),
}
# What a running job's writes hand back (UPDATE ... RETURNING): enough for its progress
# event without reading the row again, and whether a cancel was asked for meanwhile.
RUNNING_STATE = (
    "status",
    "progress",
    "message",
    "pages_done",
    "pages_total",
    "event_seq",
    "batch_id",
    "cancel_requested",
)

# What a transition of a job in hand hands back (UPDATE ... RETURNING): the fields any
# transition writes, so the caller's instance matches the row and its event needs no read.
TRANSITION_STATE = RUNNING_STATE + (
    "error",
    "output_dir",
    "worker_id",
    "attempts",
    "max_attempts",
    "started_at",
    "heartbeat_at",
    "finished_at",
    "updated_at",
    "priority",
)


def _transition(
    conversion_id,
    *,
    sources: set[str],
    target: str,
    owned_by: str | None = None,
    where: dict | None = None,
    in_hand: Conversion | None = None,
    **fields,
) -> int:
    """Move a conversion from one of ``sources`` to ``target`` in one conditional UPDATE.

    Returns the number of rows changed (0 or 1). Raises IllegalTransition when the
    machine never allows ``target`` from one of ``sources`` (a programming error).
    ``in_hand``: the caller's instance of that conversion, which then takes the values
    written, and its event is built from them instead of a read of the row.
    """
    for source in sources:
        if target not in ALLOWED_TRANSITIONS[source]:
            raise IllegalTransition(f"A conversion cannot go from {source} to {target}.")
    rows = Conversion.objects.filter(pk=conversion_id, status__in=sources)
    if owned_by is not None:
        rows = rows.filter(worker_id=owned_by)
    if where:
        rows = rows.filter(**where)
    fields = {"status": target, "updated_at": timezone.now(), "event_seq": F("event_seq") + 1, **fields}
    # A final state and its webhook event (if any) commit together. A job in hand
    # without a callback_url (set at creation, never changed) has no event to record: no
    # query for it, and its one UPDATE needs no transaction of its own (BEGIN, COMMIT).
    records_event = target in webhooks.EVENT_TYPES and (in_hand is None or bool(in_hand.callback_url))
    with transaction.atomic() if records_event else contextlib.nullcontext():
        if in_hand is None:
            state = None
            changed = rows.update(**fields)
        else:
            state = update_returning(rows, TRANSITION_STATE, **fields)
            changed = int(state is not None)
        if changed and records_event:
            webhooks.record_final_event(conversion_id, target)
    if not changed:
        return 0
    if state is None:
        progress.send_stored_state_after_commit(conversion_id, status_changed=True)
        return changed
    for name, value in state.items():
        setattr(in_hand, name, value)
    progress.send_state_after_commit(in_hand, status_changed=True)
    return 1


def _finish(conversion: Conversion, target: str, *, where: dict | None = None, **fields) -> bool:
    """running -> a final state, only by the worker that owns the job (``conversion``
    takes the values written)."""
    return bool(
        _transition(
            conversion.pk,
            sources={Status.RUNNING},
            target=target,
            owned_by=conversion.worker_id,
            where=where,
            in_hand=conversion,
            finished_at=timezone.now(),
            **fields,
        )
    )


def current_worker_id() -> str:
    """This process's worker id, "<WORKER_HOST>:<pid>" (WORKER_HOST: the host name unless set)."""
    return f"{settings.WORKER_HOST}:{os.getpid()}"


def claim_conversion(*, conversion_id, worker_id: str) -> Conversion | None:
    """Take a queued conversion for this worker; None if it is not queued (any more)."""
    now = timezone.now()
    claimed = _transition(
        conversion_id,
        sources={Status.QUEUED},
        target=Status.RUNNING,
        worker_id=worker_id,
        attempts=F("attempts") + 1,
        started_at=now,
        heartbeat_at=now,
        message="Starting conversion...",
    )
    if not claimed:
        return None
    return Conversion.objects.select_related("document").get(pk=conversion_id)


def claim_next(*, worker_id: str) -> Conversion | None:
    """Take the queued conversion that should run next: highest priority first; at equal
    priority the owner with the fewest running jobs, then the one served least recently
    (fair share: a user with many queued jobs cannot starve one who arrives later); then
    that owner's oldest job.

    django-q2 has no priorities, so a task message is only a wake-up: whichever job it
    named, the worker claims the best queued one. Every queued job has sent a message,
    so there are never fewer messages than queued jobs; a spare one claims nothing.
    SKIP LOCKED lets concurrent workers pick different jobs without waiting.

    Usually one statement does it all (conversions/claiming.py); the loop below is the
    same order step by step, for when the fair owner's next job is being claimed by
    another worker at this very moment.
    """
    claimed = claim_in_one_statement(worker_id=worker_id)
    if claimed is not None:
        progress.send_state_after_commit(claimed, status_changed=True)
        return claimed
    waiting = Conversion.objects.filter(status=Status.QUEUED).select_for_update(skip_locked=True)
    while True:
        with transaction.atomic():
            best = waiting.order_by("-priority", "created_at").values_list("pk", "priority").first()
            if best is None:
                return None
            conversion_id, priority = best
            conversion_id = _fairest_waiting(waiting, priority=priority) or conversion_id
            claimed = claim_conversion(conversion_id=conversion_id, worker_id=worker_id)
        if claimed is not None:
            return claimed


def _fairest_waiting(waiting, *, priority: int):
    """Of ``waiting`` (queued, lockable) jobs at ``priority``: the oldest of the owner who
    deserves the next turn; None when another worker holds all of them."""
    for owner_id in _owners_by_fair_share(priority=priority):
        oldest = waiting.filter(priority=priority, owner_id=owner_id).order_by("created_at")
        conversion_id = oldest.values_list("pk", flat=True).first()
        if conversion_id is not None:
            return conversion_id
    return None


def _owners_by_fair_share(*, priority: int) -> list:
    """Owners with jobs queued at ``priority``: fewest running jobs first, then the one
    whose last job started longest ago (never: first), then the one waiting longest."""
    queued_here = Q(status=Status.QUEUED, priority=priority)
    owners = (
        Conversion.objects.filter(owner__in=Conversion.objects.filter(queued_here).values("owner"))
        .values("owner")
        .annotate(
            running=Count("pk", filter=Q(status=Status.RUNNING)),
            last_started=Max("started_at"),
            waiting_since=Min("created_at", filter=queued_here),
        )
    )
    never = datetime.min.replace(tzinfo=UTC)

    def turn(row):
        return row["running"], row["last_started"] or never, row["waiting_since"] or never

    return [row["owner"] for row in sorted(owners, key=turn)]
