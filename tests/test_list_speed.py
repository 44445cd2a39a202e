"""List endpoints: a fixed number of queries whatever the number of rows, and the native
list's fast rows (conversions/api/fast_fields.py) identical to DRF's own output."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIClient

from conversions import batches, selectors, services
from conversions.api import fast_fields
from conversions.api.serializers import ConversionSerializer
from conversions.api.views import ConversionListView
from conversions.models import Conversion
from tests.conftest import ONE_PAGE, upload_of
from workers import pipeline

QUEUE_LIVE = "/admin/conversions/conversion/queue/live/"


def add_jobs(owner, count: int, *, running: int = 0) -> None:
    document = services.create_document(owner=owner, upload=upload_of(ONE_PAGE), max_pages=10)
    for _ in range(count):
        services.create_conversion(document=document, owner=owner)
    for index in range(running):
        services.claim_next(worker_id=f"host:{100 + index}")


def queries_for(client, path: str) -> int:
    client.get(path)  # sessions, caches
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("path", ["/api/v1/conversions", "/api/v1/documents", "/documents"])
def test_the_lists_read_a_fixed_number_of_queries(db, owner, path):
    client = APIClient()
    add_jobs(owner, 2, running=1)
    few = queries_for(client, path)
    for _ in range(8):
        add_jobs(owner, 3, running=1)
    assert Conversion.objects.count() == 26
    assert queries_for(client, path) == few


def test_the_admin_queue_fragment_reads_a_fixed_number_of_queries(db, owner):
    staff = get_user_model().objects.create_superuser("admin", "admin@example.invalid", "correct horse battery")
    client = Client()
    client.force_login(staff)
    add_jobs(owner, 2, running=1)
    few = queries_for(client, QUEUE_LIVE)
    add_jobs(owner, 40, running=6)
    assert queries_for(client, QUEUE_LIVE) == few


def every_kind_of_conversion(owner, make_conversion, **expired_fields) -> Conversion:
    """A queued job with a page selection (returned), a completed one, one of a batch, a
    running one, and one whose results expired (with ``expired_fields``)."""
    queued = make_conversion(ONE_PAGE, priority=3, pages="1")
    done = make_conversion(ONE_PAGE)
    pipeline.run_one(done.pk)
    document = services.create_document(owner=owner, upload=upload_of(ONE_PAGE, "batch.pdf"), max_pages=10)
    batches.queue_batch(owner=owner, documents=[document], options=batches.BatchOptions(engine="noop"), max_queued=0)
    running = make_conversion(ONE_PAGE)
    services.claim_conversion(conversion_id=running.pk, worker_id="host:1")
    expired = make_conversion(ONE_PAGE)
    Conversion.objects.filter(pk=expired.pk).update(
        on_page_error="skip",
        pages_failed=[{"page": 1, "error": "unreadable"}],
        callback_url="https://hooks.example.invalid/done",
        expired_at=timezone.now(),
        **expired_fields,
    )
    return queued


def test_fast_conversion_rows_are_what_drf_would_render(db, owner, make_conversion):
    queued = every_kind_of_conversion(owner, make_conversion, status="completed")
    rows = Conversion.objects.select_related("document").order_by("created_at")
    assert rows.count() == 5 and rows.exclude(batch=None).count() == 1
    for conversion in rows:
        serializer = ConversionSerializer(conversion)
        assert serializer.data == serializers.ModelSerializer.to_representation(serializer, conversion)
    # Every field is read straight off the row: after the first, a serializer never builds DRF's fields.
    assert fast_fields._all_known[ConversionSerializer] == tuple(ConversionSerializer.Meta.fields)
    serializer = ConversionSerializer(rows[0])
    assert serializer.data and "fields" not in serializer.__dict__
    assert {row.status for row in rows} >= {"queued", "running", "completed"}
    assert queued.pk in {row.pk for row in rows}


def test_the_native_list_shows_each_conversion_as_its_detail_does(db, owner, make_conversion):
    """The list reads values, not model instances: every field of every kind of row is
    still what the conversion's own GET (a model instance through the serializer) shows."""
    every_kind_of_conversion(owner, make_conversion, status="failed", error="page 1: unreadable")
    make_conversion(ONE_PAGE, priority=3)
    client = APIClient()
    listed = client.get("/api/v1/conversions").json()["results"]
    assert len(listed) == 6 and {row["status"] for row in listed} >= {"queued", "running", "completed", "failed"}
    assert sorted(row["queue_position"] for row in listed if row["status"] == "queued") == [0, 1, 2]
    for row in listed:
        assert row == client.get(row["links"]["detail"]).json()
    assert list(listed[0]) == list(ConversionSerializer.Meta.fields)


def test_the_queue_page_of_an_idle_queue_reads_no_queue_plan(db, owner):
    """With nothing queued when counted, the Queue page's rows cost no query; with jobs
    queued, the page is read as before."""
    with CaptureQueriesContext(connection) as captured:
        page = selectors.queued_page(1, page_size=20, queued_count=0)
    assert list(page.object_list) == [] and page.number == 1 and len(captured.captured_queries) == 0
    add_jobs(owner, 3)
    page = selectors.queued_page(1, page_size=20, queued_count=3)
    assert len(page.object_list) == 3


def list_queries(client, path: str) -> list[str]:
    client.get(path)  # sessions, caches
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("path", ["/api/v1/conversions", "/api/v1/documents"])
def test_a_first_page_that_is_not_full_is_counted_without_a_count_query(db, owner, path):
    client = APIClient()
    add_jobs(owner, 3)
    assert not [sql for sql in list_queries(client, path) if 'AS "__count"' in sql]  # the paginator's COUNT(*)
    body = client.get(path).json()
    assert body["count"] == len(body["results"]) and body["next"] is None and body["previous"] is None


def test_the_native_list_reads_the_same_queries_for_a_few_rows_as_for_a_full_page(db, owner):
    """Whatever the number of rows on the page; one more (the count) only once there is a
    second page."""
    client = APIClient()
    page_size = ConversionListView.pagination_class.page_size
    add_jobs(owner, 5, running=1)
    few = len(list_queries(client, "/api/v1/conversions"))
    add_jobs(owner, page_size - 5)
    assert Conversion.objects.count() == page_size
    assert len(list_queries(client, "/api/v1/conversions")) == few
    add_jobs(owner, 2)
    assert len(list_queries(client, "/api/v1/conversions")) == few + 1
    assert len(list_queries(client, "/api/v1/conversions?page=2")) == few + 1


def test_a_full_first_page_still_counts_every_row(db, owner):
    client = APIClient()
    page_size = ConversionListView.pagination_class.page_size
    add_jobs(owner, page_size + 2, running=1)
    first = client.get("/api/v1/conversions").json()
    assert first["count"] == page_size + 2 and len(first["results"]) == page_size
    assert first["next"].endswith("/api/v1/conversions?page=2") and first["previous"] is None
    second = client.get(first["next"]).json()
    assert second["count"] == page_size + 2 and len(second["results"]) == 2 and second["next"] is None
    newest_first = [row["id"] for row in first["results"] + second["results"]]
    assert newest_first == [str(pk) for pk in Conversion.objects.order_by("-created_at").values_list("pk", flat=True)]
    exactly_full = Conversion.objects.order_by("created_at")[:2]
    Conversion.objects.filter(pk__in=[conversion.pk for conversion in exactly_full]).delete()
    assert client.get("/api/v1/conversions").json()["count"] == page_size
    assert client.get("/api/v1/conversions?page=2").status_code == 404


def test_the_queue_fragment_of_an_idle_queue_reads_no_running_rows(db, owner):
    """With nothing running when counted, the running jobs cost no query; with one
    running, its row is shown."""
    staff = get_user_model().objects.create_superuser("admin", "admin@example.invalid", "correct horse battery")
    client = Client()
    client.force_login(staff)
    add_jobs(owner, 2)
    idle = list_queries(client, QUEUE_LIVE)
    assert not [sql for sql in idle if "'running'" in sql]
    assert "Nothing is running." in client.get(QUEUE_LIVE).content.decode()
    add_jobs(owner, 1, running=1)
    busy = list_queries(client, QUEUE_LIVE)
    assert len(busy) == len(idle) + 1
    html = client.get(QUEUE_LIVE).content.decode()
    assert html.count("data-active-task=") == 1 and "Nothing is running." not in html


def test_the_latest_output_folder_of_each_stem_is_the_newest_unexpired_completed_one_the_user_sees(db, owner):
    """selectors.latest_completed_output_dirs (the original /documents' markdown paths),
    written out in SQL: newest finished first, expired and unfinished ones skipped, other
    users' conversions unseen except by staff."""
    users = get_user_model().objects
    bob = users.create_user("bob", "bob@example.invalid", "correct horse battery")
    staff = users.create_user("staff", "staff@example.invalid", "correct horse battery", is_staff=True)
    document = services.create_document(owner=owner, upload=upload_of(ONE_PAGE, "report.pdf"), max_pages=10)
    bobs = services.create_document(owner=bob, upload=upload_of(ONE_PAGE, "report.pdf"), max_pages=10)
    now = timezone.now()

    def finished(doc, user, minutes_ago: int, folder: str, **fields) -> None:
        Conversion.objects.create(
            document=doc,
            owner=user,
            status=fields.pop("status", "completed"),
            finished_at=now - timedelta(minutes=minutes_ago),
            output_dir=folder,
            **fields,
        )

    finished(document, owner, 30, "old")
    finished(document, owner, 20, "latest")
    finished(document, owner, 10, "expired", expired_at=now)
    finished(document, owner, 5, "failed", status="failed")
    finished(bobs, bob, 1, "bobs")
    stem = document.stem
    assert bobs.stem == stem
    assert selectors.latest_completed_output_dirs(owner, stems={stem, "other"}) == {stem: "latest"}
    assert selectors.latest_completed_output_dirs(bob, stems={stem}) == {stem: "bobs"}
    assert selectors.latest_completed_output_dirs(staff, stems={stem}) == {stem: "bobs"}
    with CaptureQueriesContext(connection) as captured:
        assert selectors.latest_completed_output_dirs(owner, stems=set()) == {}
    assert not captured.captured_queries


def test_the_queue_fragment_reads_the_same_queries_for_a_full_page_of_the_queue(db, owner):
    """More queued jobs than its page shows (selectors.QUEUE_PAGE_SIZE) cost what a few do."""
    staff = get_user_model().objects.create_superuser("admin", "admin@example.invalid", "correct horse battery")
    client = Client()
    client.force_login(staff)
    add_jobs(owner, 3, running=1)
    few = len(list_queries(client, QUEUE_LIVE))
    add_jobs(owner, selectors.QUEUE_PAGE_SIZE + 10, running=2)
    html = client.get(QUEUE_LIVE).content.decode()
    assert html.count("data-queued=") == selectors.QUEUE_PAGE_SIZE
    assert len(list_queries(client, QUEUE_LIVE)) == few
    assert len(list_queries(client, QUEUE_LIVE + "?page=2")) == few
