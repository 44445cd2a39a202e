"""SQL statements per request of the list endpoints, with few and with many rows.

A count that grows with the rows listed is an N+1. Requests go through Django's test
client in this process (the same URLconf, middleware and views as daphne serves), so
every statement can be counted; no timing here.
"""

from bench.harness import SAMPLE_PDF, empty_queue

ROWS = (5, 50)
ENDPOINTS = (
    ("GET /api/v1/conversions", "/api/v1/conversions", {}),
    ("GET /api/v1/documents", "/api/v1/documents", {}),
    ("GET /documents (compat)", "/documents", {}),
    ("GET /worker-pool-status (compat)", "/worker-pool-status", {}),
    ("GET / (dashboard HTML)", "/", {"HTTP_ACCEPT": "text/html"}),
    ("GET /admin/conversions/conversion/", "/admin/conversions/conversion/", {}),
    ("GET /admin/conversions/document/", "/admin/conversions/document/", {}),
    ("GET admin queue fragment", "/admin/conversions/conversion/queue/live/", {}),
)


def fill(rows: int) -> None:
    """``rows`` documents of distinct names, each with one completed conversion."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils import timezone

    from conversions import services
    from conversions.models import Conversion, Document

    empty_queue()
    Document.objects.all().delete()
    owner = services.default_owner()
    pdf = SAMPLE_PDF.read_bytes()
    for index in range(rows):
        upload = SimpleUploadedFile(f"listed-{index}.pdf", pdf, content_type="application/pdf")
        document = services.create_document(owner=owner, upload=upload, max_pages=10)
        Conversion.objects.create(
            document=document,
            owner=owner,
            engine="noop",
            status="completed",
            pages_total=1,
            pages_done=1,
            progress=100,
            finished_at=timezone.now(),
            output_dir=f"/nonexistent/{index}",
        )


def run() -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from conversions.models import Document

    staff, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    counts: dict[str, dict[int, int]] = {name: {} for name, _, _ in ENDPOINTS}
    for rows in ROWS:
        fill(rows)
        anonymous, admin = Client(), Client()
        admin.force_login(staff)
        for name, path, headers in ENDPOINTS:
            client = admin if path.startswith("/admin/") else anonymous
            client.get(path, **headers)  # first request: sessions, caches
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path, **headers)
            assert response.status_code == 200, (path, response.status_code)
            counts[name][rows] = len(queries.captured_queries)
    empty_queue()
    Document.objects.all().delete()
    result = {
        name: {
            "rows": {str(rows): count for rows, count in by_rows.items()},
            "n_plus_1": by_rows[ROWS[-1]] > by_rows[ROWS[0]],
        }
        for name, by_rows in counts.items()
    }
    for name, row in result.items():
        print(
            f"  queries {name:38s} "
            + "  ".join(f"{rows} rows: {count:3d}" for rows, count in row["rows"].items())
            + ("   <- grows with rows (N+1)" if row["n_plus_1"] else ""),
            flush=True,
        )
    return result
