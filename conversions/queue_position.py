"""Where queued conversions stand: the order ``services.claim_next`` will claim them in.

One model of that order, ``QueuePlan``, answers both questions asked of it: the API's
``queue_position`` of given conversions (GET, the list, batches, WebSocket events of
queued jobs, the original ``/conversion-status``) and which conversions fill a stretch of
the queue (the admin's Queue page). They agree with each other and with the workers.

claim_next takes the highest priority first; at equal priority the owner with the fewest
running jobs, then the one whose last job started longest ago (never: first), then the
one waiting longest; then that owner's oldest job. Each claim makes the owner's running
count one higher and its last start the newest. Replayed on the queue as it is now, that
gives, at one priority, for owner Q with ``r`` jobs running and ``n`` waiting: its i-th
oldest job (from 0) is claimed at "level" r + i, all claims at one level come before the
next level's, and within a level owners go by (-r, last start, oldest waiting). So a
position is a sum over owners, computed from per-owner counts, never from every queued
row. Positions are exact for what successive claims would take if no running job ended
and no job arrived meanwhile; one that ends or arrives may move them (the next event of
a queued job carries its new position).

Queries, however many positions are asked for: one GROUP BY (owner, priority) of the
queued jobs (index-only on ``conversion_queue_by_owner``); only when two owners wait at
one priority, one read of those owners' running counts and last starts (index probes, as
claim_next reads them); and one for the ranks of the jobs asked about.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection
from django.db.models import Count, Min

from conversions.claiming import owner_served
from conversions.models import Conversion

Status = Conversion.Status
NEVER = (0, datetime.min.replace(tzinfo=UTC))  # claim_next's "never started" sorts first


@dataclass
class Lane:
    """One owner's queued jobs at one priority."""

    owner: int
    waiting: int  # jobs queued
    oldest: datetime  # created_at of the oldest
    running: int = 0  # the owner's running jobs when the first of these could be claimed
    last_started: tuple = NEVER  # (0, a real start) or (1, the claim number of a replayed one)

    def turn(self) -> tuple:
        """Order among owners at one level: fewer running at the start first, then served
        least recently, then waiting longest (the id only breaks exact ties)."""
        return -self.running, self.last_started, self.oldest, self.owner

    def claims_before_level(self, level: int) -> int:
        return min(self.waiting, max(0, level - self.running))

    def at_level(self, level: int) -> bool:
        return self.running <= level < self.running + self.waiting


class QueuePlan:
    """The queue's claim order, as per-owner lanes per priority (see the module docstring)."""

    def __init__(self):
        rows = (
            Conversion.objects.filter(status=Status.QUEUED)
            .order_by()
            .values("owner", "priority")
            .annotate(waiting=Count("*"), oldest=Min("created_at"))
        )
        lanes: dict[int, list[Lane]] = {}
        for row in rows:
            lanes.setdefault(row["priority"], []).append(Lane(row["owner"], row["waiting"], row["oldest"]))
        self.priorities = sorted(lanes, reverse=True)
        self.lanes = lanes
        self.offsets: dict[int, int] = {}  # priority -> queued jobs at higher priorities
        contested = any(len(at_priority) > 1 for at_priority in lanes.values())
        self.replay(owner_turns({lane.owner for at in lanes.values() for lane in at}) if contested else {})

    def replay(self, turns: dict) -> None:
        """Give each lane the owner's state when its priority's turn comes: the running
        count and last start claim_next would read after every higher priority's claims."""
        offset = 0
        for priority in self.priorities:
            self.offsets[priority] = offset
            at_priority = self.lanes[priority]
            for lane in at_priority:
                lane.running, lane.last_started = turns.get(lane.owner, (0, NEVER))
            for lane in at_priority:
                last = offset + self.claims_before(priority, lane, lane.waiting - 1)
                turns[lane.owner] = (lane.running + lane.waiting, (1, last))
            offset += sum(lane.waiting for lane in at_priority)
        self.total = offset

    def claims_before(self, priority: int, lane: Lane, rank: int) -> int:
        """Claims at ``priority`` before the ``rank``-th oldest job (from 0) of ``lane``."""
        level = lane.running + rank
        earlier = sum(other.claims_before_level(level) for other in self.lanes[priority])
        return earlier + sum(
            1
            for other in self.lanes[priority]
            if other is not lane and other.at_level(level) and other.turn() < lane.turn()
        )

    def position(self, owner: int, priority: int, rank: int) -> int | None:
        """None when the job left the queue between the two reads (claimed, cancelled)."""
        lane = next((lane for lane in self.lanes.get(priority, ()) if lane.owner == owner), None)
        if lane is None or rank >= lane.waiting:
            return None
        return self.offsets[priority] + self.claims_before(priority, lane, rank)

    def stretch(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(owner, priority, rank) of the jobs claimed ``start``-th to ``stop``-th (excluded)."""
        found = []
        for priority in self.priorities:
            offset = self.offsets[priority]
            at_priority = self.lanes[priority]
            size = sum(lane.waiting for lane in at_priority)
            if offset + size <= start or offset >= stop:
                continue
            level, claimed = min(lane.running for lane in at_priority), offset
            while claimed < stop and claimed < offset + size:
                turn = sorted((lane for lane in at_priority if lane.at_level(level)), key=Lane.turn)
                if claimed + len(turn) > start:  # else the whole level lies before the stretch
                    for lane in turn:
                        if start <= claimed < stop:
                            found.append((lane.owner, priority, level - lane.running))
                        claimed += 1
                else:
                    claimed += len(turn)
                level += 1
        return found


OWNER_TURNS = f"SELECT owner.id, {owner_served('owner.id')} FROM unnest(%s::bigint[]) AS owner(id)"


def owner_turns(owners: set) -> dict:
    """owner -> (running jobs, last start as a sortable key), read as claim_next reads
    them (claiming.owner_served: index probes, not a read of each owner's history)."""
    with connection.cursor() as cursor:
        cursor.execute(
            OWNER_TURNS.format(conversion=connection.ops.quote_name(Conversion._meta.db_table)), [sorted(owners)]
        )
        return {owner: (running, (0, last) if last else NEVER) for owner, running, last in cursor.fetchall()}


RANKS = """
    SELECT id, owner_id, priority, rank FROM (
        SELECT id, owner_id, priority,
               ROW_NUMBER() OVER (PARTITION BY owner_id, priority ORDER BY created_at, id) - 1 AS rank
        FROM {table} WHERE status = %s AND owner_id = ANY(%s)
    ) AS ranked WHERE id = ANY(%s)
"""


def ranks(conversions) -> dict:
    """id -> (owner, priority, rank from 0 among that owner's queued jobs at that priority,
    oldest first), for the queued ones among ``conversions``: one query (the rank is taken
    before the ids are picked, so it is SQL, not a filtered window queryset)."""
    queued = [conversion for conversion in conversions if conversion.status == Status.QUEUED]
    owners = sorted({conversion.owner_id for conversion in queued})
    with connection.cursor() as cursor:
        cursor.execute(
            RANKS.format(table=Conversion._meta.db_table),
            [Status.QUEUED, owners, [conversion.pk for conversion in queued]],
        )
        return {pk: (owner, priority, rank) for pk, owner, priority, rank in cursor.fetchall()}


def queue_positions(conversions) -> dict:
    """conversion id -> its queue position (0: claimed next), for the queued ones among
    ``conversions``; no query when none is queued."""
    if not any(conversion.status == Status.QUEUED for conversion in conversions):
        return {}
    found = ranks(conversions)
    plan = QueuePlan()
    return {pk: plan.position(owner, priority, rank) for pk, (owner, priority, rank) in found.items()}


def with_queue_positions(conversions):
    """Set ``queue_position`` (an int, or None when not queued) on each of ``conversions``
    in a fixed number of queries; returns them."""
    conversions = list(conversions)
    positions = queue_positions(conversions)
    for conversion in conversions:
        conversion.queue_position = positions.get(conversion.pk) if conversion.status == Status.QUEUED else None
    return conversions


def queue_position(conversion: Conversion) -> int | None:
    """One conversion's position (set by with_queue_positions, or read now)."""
    if not hasattr(conversion, "queue_position"):
        with_queue_positions([conversion])
    return conversion.queue_position  # type: ignore[attr-defined]  # set by with_queue_positions


def queued_ids(start: int, stop: int) -> tuple[list, int]:
    """(ids of the jobs claimed ``start``-th to ``stop``-th, in claim order; how many are
    queued): the admin's Queue page. One query per owner and priority in the stretch,
    each an indexed OFFSET, sent as one UNION ALL."""
    plan = QueuePlan()
    stretch = plan.stretch(start, stop)
    if not stretch:
        return [], plan.total
    ranges: dict[tuple[int, int], list[int]] = {}
    for owner, priority, rank in stretch:
        ranges.setdefault((owner, priority), []).append(rank)
    slices = [
        Conversion.objects.filter(status=Status.QUEUED, owner=owner, priority=priority)
        .order_by("created_at", "pk")
        .values_list("pk", "owner_id", "priority", "created_at")[min(taken) : max(taken) + 1]
        for (owner, priority), taken in ranges.items()
    ]
    rows = slices[0].union(*slices[1:], all=True) if len(slices) > 1 else slices[0]
    by_lane: dict[tuple[int, int], list] = {}
    for pk, owner, priority, created_at in rows:
        by_lane.setdefault((owner, priority), []).append((created_at, pk))
    order = []
    for owner, priority, rank in stretch:
        lane = [pk for _, pk in sorted(by_lane.get((owner, priority), []))]  # a UNION keeps no order
        index = rank - min(ranges[(owner, priority)])
        if index < len(lane):
            order.append(lane[index])
    return order, plan.total


def claim_order() -> list:
    """Ids of every queued conversion in claim order (for tests and tools: reads the whole queue)."""
    return queued_ids(0, Conversion.objects.filter(status=Status.QUEUED).count())[0]
