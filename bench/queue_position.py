"""Cost of queue positions (conversions/queue_position.py claim_order) on a deep queue.

    DATABASE_URL=postgres://.../scratch .venv/bin/python -m bench.queue_position [--sizes 1000 10000 30000]

For each queue size, with one owner (no fair share to apply) and with ten owners at two
priorities, prints the time of what the API and the admin page now do, beside references
measured in the same run on the same rows:

  positions   with_queue_positions() of 50 queued rows (the list endpoint's page)
  admin page  queued_ids() of the page in the middle of the queue (the Queue page)
  ids, index  reference: reading every queued id in priority/age order (a naive replay
              would read at least this)
  OFFSET      reference: the Queue page's former read of one page of 50 (priority/age
              order, no fair share)

Rows are created in a transaction that is rolled back, so the database is left as it
was (it must be migrated).
"""

import argparse
import os
import statistics
import time


def timed(function, repeat: int = 5) -> float:
    """Median wall time of ``function()`` in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def fill(size: int, owners: int) -> None:
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile

    from conversions import services
    from conversions.models import Conversion

    users = [get_user_model().objects.create_user(f"bench-{owners}-{index}") for index in range(owners)]
    pdf = (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj "
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )
    document = services.create_document(owner=users[0], upload=SimpleUploadedFile("b.pdf", pdf), max_pages=10)
    Conversion.objects.bulk_create(
        (
            Conversion(document=document, owner=users[index % owners], priority=(index % 2) * 5, pages_total=1)
            for index in range(size)
        ),
        batch_size=5000,
    )
    with __import__("django.db", fromlist=["connection"]).connection.cursor() as cursor:
        cursor.execute("ANALYZE conversions_conversion")


def measure(size: int, owners: int) -> dict:
    from django.db import transaction

    from conversions import selectors
    from conversions.models import Conversion
    from conversions.queue_position import queued_ids, with_queue_positions

    with transaction.atomic():
        fill(size, owners)
        page = list(Conversion.objects.filter(status="queued").order_by("?")[:50])
        row = {
            "positions_ms": timed(lambda: with_queue_positions(page)),
            "admin_page_ms": timed(lambda: queued_ids(size // 2, size // 2 + 50)),
            "all_ids_in_index_order_ms": timed(
                lambda: list(selectors.queued_in_run_order().values_list("pk", flat=True))
            ),
            "one_offset_page_ms": timed(
                lambda: list(selectors.queued_in_run_order().values_list("pk", flat=True)[size // 2 : size // 2 + 50])
            ),
        }
        transaction.set_rollback(True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 30_000])
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dotsocr_site.settings")
    import django

    django.setup()
    print(
        f"{'queued':>7} {'owners':>6} {'positions':>10} {'admin page':>11} {'ids, index':>11} {'OFFSET':>9}"
        f" {'positions/ids':>14} {'admin/OFFSET':>13}"
    )
    for size in args.sizes:
        for owners in (1, 10):
            row = measure(size, owners)
            print(
                f"{size:>7} {owners:>6} {row['positions_ms']:>8.1f}ms {row['admin_page_ms']:>9.1f}ms "
                f"{row['all_ids_in_index_order_ms']:>9.1f}ms {row['one_offset_page_ms']:>7.1f}ms "
                f"{row['positions_ms'] / row['all_ids_in_index_order_ms']:>13.2f}x "
                f"{row['admin_page_ms'] / row['one_offset_page_ms']:>12.2f}x"
            )


if __name__ == "__main__":
    main()
