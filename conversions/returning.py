"""``QuerySet.update`` that also hands back the columns it wrote: one round trip where an
UPDATE followed by a SELECT of the row took two (PostgreSQL's ``UPDATE ... RETURNING``).

Django 5.2 has no ``update(..., returning=...)``; this compiles the same UPDATE the
queryset would run (filters and F() expressions included) and appends RETURNING.
"""

from django.db import connections, transaction
from django.db.models import QuerySet
from django.db.models.sql import UpdateQuery


def update_returning(rows: QuerySet, returning: tuple[str, ...], **fields) -> dict | None:
    """Run ``rows.update(**fields)`` and return the first updated row's ``returning``
    fields (attribute names, e.g. "batch_id") as a dict; None when no row matched.
    Meant for one row (a filter on the primary key)."""
    query = rows.query.chain(UpdateQuery)
    query.add_update_values(fields)  # type: ignore[attr-defined]  # chain() made it an UpdateQuery
    query.annotations = {}
    compiler = query.get_compiler(rows.db)
    compiler.pre_sql_setup()
    statement, params = compiler.as_sql()
    connection = connections[rows.db]
    model = rows.model
    columns = ", ".join(
        f"{connection.ops.quote_name(model._meta.db_table)}.{connection.ops.quote_name(model._meta.get_field(name).column)}"
        for name in returning
    )
    with transaction.mark_for_rollback_on_error(using=rows.db), connection.cursor() as cursor:
        cursor.execute(f"{statement} RETURNING {columns}", params)
        row = cursor.fetchone()
    return None if row is None else dict(zip(returning, row, strict=True))
