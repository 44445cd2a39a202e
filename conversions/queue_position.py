"""Where queued conversions stand: the order ``services.claim_next`` will claim them in.

One function, ``claim_order``, gives that order; the API's ``queue_position``, the
WebSocket events of queued jobs, the original ``/conversion-status`` and the admin's Queue
page all read it, so they agree with each other and with the workers.

claim_next takes the highest priority first; at equal priority the owner with the fewest
running jobs, then the one whose last job started longest ago (never: first), then the
one waiting longest; then that owner's oldest job. Each claim makes the owner's running
count one higher and its last start the newest. ``claim_order`` replays exactly that on
the rows as they are now, so a position is the number of queued jobs that successive
claims would take first if no running job ended and no job arrived meanwhile (a job that
ends or arrives may move it; the events of a queued job carry the position again).

Cost: one query reading every queued job's (id, owner, priority, created_at) through the
partial index ``conversion_queue_order``, and, only when two owners wait at the same
priority, one GROUP BY of those owners' jobs (running count, last start). A fixed number
of queries however many positions are asked for: the list endpoint asks for its page.
"""

import heapq
from collections import defaultdict, deque
from datetime import UTC, datetime

from django.db.models import Count, Max, Q

from conversions.models import Conversion

Status = Conversion.Status
# claim_next's "never started" sorts first; simulated claims sort after every real start.
NEVER = (0, datetime.min.replace(tzinfo=UTC))


def claim_order() -> list:
    """Ids of every queued conversion in the order successive ``claim_next`` calls would
    claim them now (see the module docstring). Ties claim_next leaves to the database
    (two jobs of one owner created in the same microsecond) are broken by id."""
    rows = Conversion.objects.filter(status=Status.QUEUED).order_by("-priority", "created_at", "pk").values_list(
        "pk", "owner_id", "priority", "created_at")
    levels: dict[int, dict] = {}  # priority -> owner -> deque of (pk, created_at), oldest first
    for pk, owner_id, priority, created_at in rows:
        levels.setdefault(priority, defaultdict(deque))[owner_id].append((pk, created_at))
    if all(len(owners) == 1 for owners in levels.values()):  # no fair share to apply
        return [pk for owners in levels.values() for jobs in owners.values() for pk, _ in jobs]
    state = owner_turns({owner for owners in levels.values() for owner in owners})
    order: list = []
    for priority in sorted(levels, reverse=True):
        order += claims_at_one_priority(levels[priority], state, start=len(order))
    return order


def owner_turns(owners: set) -> dict:
    """owner -> [running jobs, last start as a sortable key], as claim_next reads them."""
    rows = (Conversion.objects.filter(owner__in=owners).order_by().values("owner")
            .annotate(running=Count("pk", filter=Q(status=Status.RUNNING)), last_started=Max("started_at")))
    state = {owner: [0, NEVER] for owner in owners}
    for row in rows:
        state[row["owner"]] = [row["running"], (0, row["last_started"]) if row["last_started"] else NEVER]
    return state


def claims_at_one_priority(owners: dict, state: dict, *, start: int) -> list:
    """Claim every job of ``owners`` (owner -> its jobs, oldest first) in fair-share
    turns, updating ``state`` as each claim does; ``start`` numbers the simulated claims."""

    def turn(owner):
        running, last_started = state[owner]
        return running, last_started, owners[owner][0][1], str(owner)

    heap = [(turn(owner), owner) for owner in owners]
    heapq.heapify(heap)
    claimed = []
    while heap:
        _, owner = heapq.heappop(heap)
        pk, _ = owners[owner].popleft()
        claimed.append(pk)
        state[owner] = [state[owner][0] + 1, (1, start + len(claimed))]
        if owners[owner]:
            heapq.heappush(heap, (turn(owner), owner))
    return claimed


def queue_positions(conversions) -> dict:
    """conversion id -> its queue position (0: claimed next), for the queued ones among
    ``conversions``; no query when none is queued."""
    if not any(conversion.status == Status.QUEUED for conversion in conversions):
        return {}
    return {pk: position for position, pk in enumerate(claim_order())}


def with_queue_positions(conversions):
    """Set ``queue_position`` (an int, or None when not queued) on each of ``conversions``
    in at most two queries; returns them."""
    conversions = list(conversions)
    positions = queue_positions(conversions)
    for conversion in conversions:
        conversion.queue_position = positions.get(conversion.pk) if conversion.status == Status.QUEUED else None
    return conversions


def queue_position(conversion: Conversion) -> int | None:
    """One conversion's position (set by with_queue_positions, or read now)."""
    if not hasattr(conversion, "queue_position"):
        with_queue_positions([conversion])
    return conversion.queue_position
