"""A page's checkpoint in one statement (services.checkpoint_page).

The page's result row and the job's progress are written together, atomically, and only
while the job is still this worker's (the row lock taken first re-checks status and
worker), in one round trip where BEGIN, SAVEPOINT, INSERT, RELEASE, UPDATE and COMMIT
took six::

    WITH owned AS (SELECT id FROM conversion WHERE id = .. AND status = 'running'
                   AND worker_id = .. FOR UPDATE),
         added AS (INSERT INTO pageresult (..) SELECT .. FROM owned
                   ON CONFLICT DO NOTHING RETURNING 1)
    UPDATE conversion SET pages_done = pages_done + (SELECT count(*) FROM added), ..
      FROM owned WHERE conversion.id = owned.id RETURNING ..

A page another attempt already checkpointed is kept as it was (ON CONFLICT DO NOTHING)
and not counted again. The INSERT is the one Django compiles for the model (every
column, defaults and JSON adaptation included), turned from VALUES into a SELECT.
"""

from django.db import connection, transaction
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery

from conversions.models import Conversion, PageResult

VALUES, CONFLICT = " VALUES (", ") ON CONFLICT DO NOTHING"


def _insert_from_owned(result: PageResult) -> tuple[str, list]:
    fields = [field for field in PageResult._meta.concrete_fields if not field.primary_key]
    query = InsertQuery(PageResult, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [result])
    ((statement, params),) = query.get_compiler(connection=connection).as_sql()
    head, rest = statement.split(VALUES, 1)
    values = rest[: rest.rindex(CONFLICT)]
    return f"{head} SELECT {values} FROM owned ON CONFLICT DO NOTHING RETURNING 1", list(params)


def checkpoint(
    conversion: Conversion, result: PageResult, *, total: int, now, returning: tuple[str, ...]
) -> tuple[dict | None, bool]:
    """Insert ``result`` and count it on ``conversion`` (progress 10 + 80 x done / ``total``,
    never backwards; "Processing pages: done/total"), if the job is still running on
    ``conversion.worker_id``: (the ``returning`` fields after the write, or None when the
    job is no longer ours; whether the page was new)."""
    quote = connection.ops.quote_name
    table = quote(Conversion._meta.db_table)
    columns = ", ".join(f"{table}.{quote(Conversion._meta.get_field(name).column)}" for name in returning)  # type: ignore[union-attr, arg-type]
    insert, insert_params = _insert_from_owned(result)
    done = "(job.pages_done + (SELECT count(*) FROM added))"
    statement = (
        f"WITH owned AS (SELECT id FROM {table} WHERE id = %s AND status = 'running' AND worker_id = %s FOR UPDATE), "
        f"added AS ({insert}) "
        f"UPDATE {table} AS job SET heartbeat_at = %s, updated_at = %s, event_seq = job.event_seq + 1, "
        f"pages_done = {done}, progress = GREATEST(job.progress, 10 + {done} * 80 / %s), "
        f"message = 'Processing pages: ' || {done} || %s "
        f"FROM owned WHERE job.id = owned.id RETURNING {columns.replace(table + '.', 'job.')}, "
        "(SELECT count(*) FROM added)"
    )
    params = [conversion.pk, conversion.worker_id, *insert_params, now, now, total, f"/{total}"]
    with transaction.mark_for_rollback_on_error(), connection.cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    if row is None:
        return None, False
    return dict(zip(returning, row[:-1], strict=True)), bool(row[-1])
