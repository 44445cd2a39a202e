"""The claim of the next queued job in one statement (services.claim_next's fast path).

One round trip picks the job, marks it running and returns it with its document:
``WITH ... UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING``,
the shape of the plain SKIP LOCKED queue (bench/reference.py), with the fair-share order
of services.claim_next written in SQL:

1. the highest priority queued;
2. of the owners with jobs queued at it, the one with the fewest running jobs, then the
   one whose last job started longest ago (never: first), then the one waiting longest;
3. that owner's oldest job at that priority, skipping rows other workers hold.

It returns None when that owner's jobs at that priority are all being claimed by other
workers at this instant (or nothing is queued); services.claim_next then takes its
general path, which walks the next owners and priorities, so the order is the same.
"""

from django.db import connection
from django.utils import timezone

from conversions.models import Conversion, Document


def owner_served(owner: str) -> str:
    """Fair share's two facts about one owner, as the SELECT items ``running`` and
    ``last_started``: its running jobs (a probe of conversion_running_by_owner) and its
    latest start (one of conversion_owner_started), not a read of its whole history.
    ``owner``: an SQL expression of the owner's id; ``{conversion}`` is left for the
    statement's own ``format`` (the claim below, and queue_position.owner_turns)."""
    return (
        "(SELECT count(*) FROM {conversion} AS mine"
        f" WHERE mine.owner_id = {owner} AND mine.status = 'running') AS running,"
        f" (SELECT max(mine.started_at) FROM {{conversion}} AS mine WHERE mine.owner_id = {owner}) AS last_started"
    )


CLAIM = """
WITH RECURSIVE top AS (
    SELECT max(priority) AS priority FROM {conversion} WHERE status = 'queued'
), owners AS (
    -- The owners with jobs queued at the top priority, each with its oldest such job:
    -- a walk over conversion_queue_by_owner, one index probe per owner, where a GROUP BY
    -- read every queued row (a 10,000-job backlog made every claim read 10,000 rows).
    (SELECT first.owner_id, first.created_at AS waiting_since
       FROM top CROSS JOIN LATERAL (
                SELECT queued.owner_id, queued.created_at FROM {conversion} AS queued
                 WHERE queued.status = 'queued' AND queued.priority = top.priority
                 ORDER BY queued.owner_id, queued.priority DESC, queued.created_at LIMIT 1
            ) AS first)
    UNION ALL
    SELECT later.owner_id, later.created_at
      FROM owners CROSS JOIN top CROSS JOIN LATERAL (
               SELECT queued.owner_id, queued.created_at FROM {conversion} AS queued
                WHERE queued.status = 'queued' AND queued.priority = top.priority
                  AND queued.owner_id > owners.owner_id
                ORDER BY queued.owner_id, queued.priority DESC, queued.created_at LIMIT 1
           ) AS later
), turn AS (
    -- Each owner's running jobs and last start (owner_served).
    SELECT owners.owner_id
      FROM owners CROSS JOIN LATERAL (SELECT {served}) AS served
     ORDER BY served.running, served.last_started NULLS FIRST, owners.waiting_since, owners.owner_id
     LIMIT 1
), claimed AS (
    UPDATE {conversion} AS job
       SET status = 'running', worker_id = %(worker)s, attempts = job.attempts + 1, started_at = %(now)s,
           heartbeat_at = %(now)s, updated_at = %(now)s, event_seq = job.event_seq + 1,
           message = 'Starting conversion...'
     WHERE job.id = (SELECT next.id FROM {conversion} AS next
                      -- Values, not joins: the planner then walks conversion_queue_by_owner
                      -- from that owner and priority, not every queued row by age.
                      WHERE next.status = 'queued' AND next.priority = (SELECT priority FROM top)
                        AND next.owner_id = (SELECT owner_id FROM turn)
                      ORDER BY next.created_at
                      LIMIT 1 FOR UPDATE OF next SKIP LOCKED)
       AND job.status = 'queued'
 RETURNING job.*
)
SELECT {conversion_columns}, {document_columns}
  FROM claimed JOIN {document} AS document ON document.id = claimed.document_id
""".replace("{served}", owner_served("owners.owner_id"))


def _columns(model, alias: str) -> tuple[list[str], str]:
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    return [field.attname for field in fields], ", ".join(f"{alias}.{quote(field.column)}" for field in fields)


def claim_in_one_statement(*, worker_id: str) -> Conversion | None:
    """Claim the job fair share says runs next, with its document; None when there is
    none or its row is being claimed by another worker (the caller falls back)."""
    conversion_names, conversion_columns = _columns(Conversion, "claimed")
    document_names, document_columns = _columns(Document, "document")
    quote = connection.ops.quote_name
    statement = CLAIM.format(
        conversion=quote(Conversion._meta.db_table),
        document=quote(Document._meta.db_table),
        conversion_columns=conversion_columns,
        document_columns=document_columns,
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, {"worker": worker_id, "now": timezone.now()})
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(conversion_names)
    conversion = Conversion.from_db(connection.alias, conversion_names, row[:split])
    conversion.document = Document.from_db(connection.alias, document_names, row[split:])
    return conversion
