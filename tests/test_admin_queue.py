"""The admin's Queue page: run order, running jobs, throughput, clusters, counts; staff
only; a constant number of indexed queries with 100,000 jobs in the table."""

import os
import re
import socket
import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversions import selectors, services
from conversions.models import Conversion, PageResult
from tests.conftest import ONE_PAGE

QUEUE = "/admin/conversions/conversion/queue/"
QUEUE_LIVE = "/admin/conversions/conversion/queue/live/"


def staff_client(username="admin", *, superuser=True) -> Client:
    users = get_user_model().objects
    if superuser:
        user = users.create_superuser(username, f"{username}@example.invalid", "correct horse battery")
    else:
        user = users.create_user(username, f"{username}@example.invalid", "correct horse battery", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff(db):
    return staff_client()


def queued_ids(html: str) -> list[str]:
    return re.findall(r'data-queued="([0-9a-f-]+)"', html)


def cell(html: str, attribute: str, value: str) -> str:
    return re.search(rf'{attribute}="{value}">([^<]*)<', html).group(1)


# --- what the page shows ------------------------------------------------------------------


def test_queued_jobs_are_listed_in_the_order_workers_claim_them(staff, make_document, owner):
    document = make_document(ONE_PAGE)
    jobs = [
        services.create_conversion(document=document, owner=owner, priority=priority)
        for priority in (0, 5, -3, 5, 10, 0, -3, 7)
    ]

    listed = queued_ids(staff.get(QUEUE).content.decode())

    claimed = [str(services.claim_next(worker_id="test:1").pk) for _ in jobs]
    assert listed == claimed
    assert len(set(listed)) == len(jobs)


def test_the_queue_is_paginated_with_positions(staff, make_document, owner):
    document = make_document(ONE_PAGE)
    Conversion.objects.bulk_create(Conversion(document=document, owner=owner) for _ in range(120))

    html = staff.get(QUEUE + "?page=3").content.decode()

    expected = [str(pk) for pk in selectors.queued_in_run_order().values_list("pk", flat=True)[100:120]]
    assert queued_ids(html) == expected
    assert re.search(r'<td class="number">101</td>\s*<td><a href="[^"]+">' + expected[0], html)
    assert "Queued, in the order they will run (120)" in html
    assert queued_ids(staff.get(QUEUE + "?page=99").content.decode()) == expected  # past the end: the last page


def test_counts_per_status(staff, make_conversion):
    done, _waiting, stopped = make_conversion(ONE_PAGE), make_conversion(ONE_PAGE), make_conversion(ONE_PAGE)
    services.claim_conversion(conversion_id=done.pk, worker_id="test:1")
    services.cancel_conversion(conversion=stopped)

    html = staff.get(QUEUE).content.decode()

    assert [cell(html, "data-status", status) for status in Conversion.Status.values] == ["1", "1", "0", "0", "1"]


def test_running_jobs_show_worker_page_and_heartbeat_age(staff, make_conversion, settings):
    fresh, stale = make_conversion(), make_conversion()
    for job, worker in ((fresh, "host-a:101"), (stale, "host-b:202")):
        claimed = services.claim_conversion(conversion_id=job.pk, worker_id=worker)
        services.record_pdf_loaded(conversion=claimed, pages_total=4)
    now = timezone.now()
    Conversion.objects.filter(pk=fresh.pk).update(pages_done=2, heartbeat_at=now - timedelta(seconds=42))
    Conversion.objects.filter(pk=stale.pk).update(heartbeat_at=now - timedelta(seconds=settings.LEASE_SECONDS + 60))

    html = staff.get(QUEUE).content.decode()

    row = re.search(rf'<tr data-active-task="{fresh.pk}">(.*?)</tr>', html, re.S).group(1)
    assert "host-a:101" in row and "2/4" in row
    age = int(re.search(r'<td class="number">(\d+) s</td>', row).group(1))
    assert 42 <= age <= 44  # measured when the page was read
    assert re.search(rf'<tr data-active-task="{stale.pk}" class="stale"', html)
    assert "Running (2)" in html


def test_throughput_is_pages_per_minute_over_recent_windows(staff, make_conversion):
    conversion = make_conversion()
    ages_in_seconds = [20, 40, 150, 200, 290, 400, 600, 880, 3600, 7200]
    PageResult.objects.bulk_create(
        PageResult(conversion=conversion, page_no=n, engine="textlayer") for n in range(len(ages_in_seconds))
    )
    now = timezone.now()
    for page_no, age in enumerate(ages_in_seconds):  # created_at is auto_now_add: set it after
        page = PageResult.objects.filter(conversion=conversion, page_no=page_no)
        page.update(created_at=now - timedelta(seconds=age))

    assert selectors.pages_per_minute() == {1: 2.0, 5: 5 / 5, 15: 8 / 15}
    html = staff.get(QUEUE).content.decode()
    assert [cell(html, "data-minutes", minutes) for minutes in ("1", "5", "15")] == ["2.0", "1.0", "0.5"]


def test_links_from_the_admin_index_and_the_conversion_list(staff):
    assert QUEUE in staff.get("/admin/").content.decode()
    assert QUEUE in staff.get("/admin/conversions/conversion/").content.decode()


def test_the_live_part_alone_is_what_the_page_embeds(staff, make_conversion):
    job = make_conversion(ONE_PAGE)
    live = staff.get(QUEUE_LIVE)
    assert live.status_code == 200
    html = live.content.decode()
    assert queued_ids(html) == [str(job.pk)] and "<html" not in html
    page = staff.get(QUEUE).content.decode()
    assert f'data-live-url="{QUEUE_LIVE}"' in page and 'data-socket-path="/ws/v1/queue"' in page


# --- who may see it -------------------------------------------------------------------------


@pytest.mark.parametrize("url", [QUEUE, QUEUE_LIVE])
def test_anonymous_and_non_staff_are_sent_to_the_login_page(db, url):
    user = get_user_model().objects.create_user("visitor", "v@example.invalid", "pw")
    signed_in = Client()
    signed_in.force_login(user)
    for client in (Client(), signed_in):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_staff_without_the_view_permission_is_refused(db):
    client = staff_client("clerk", superuser=False)
    assert client.get(QUEUE).status_code == 403
    assert QUEUE not in client.get("/admin/").content.decode()
    user = get_user_model().objects.get(username="clerk")
    user.user_permissions.add(Permission.objects.get(codename="view_conversion"))
    assert client.get(QUEUE).status_code == 200


# --- clusters (a real qcluster) ---------------------------------------------------------------


@pytest.mark.acceptance
def test_each_cluster_is_listed_with_its_worker_processes(live_cluster, transactional_db):
    staff = staff_client()
    deadline = time.monotonic() + 30
    # Wait for this cluster alone: another test's cluster, stopped just before, stays listed
    # until its stat expires (3 s), and reading an expired stat deletes it (a query more).
    stats = selectors.cluster_stats()
    while [stat.pid for stat in stats] != [live_cluster.process.pid]:
        assert time.monotonic() < deadline, f"the cluster never published its stats alone: {stats}"
        time.sleep(0.2)
        stats = selectors.cluster_stats()

    with CaptureQueriesContext(connection) as captured:
        html = staff.get(QUEUE).content.decode()

    cache_reads = [query["sql"] for query in captured.captured_queries if "dotsocr_cache" in query["sql"]]
    assert len(cache_reads) == 2 and all(sql.startswith("SELECT") for sql in cache_reads)  # the key list, the stats
    row = re.search(rf'<tr data-cluster="{stats[0].cluster_id}">(.*?)</tr>', html, re.S).group(1)
    assert socket.gethostname() in row
    pids = [int(pid) for pid in re.findall(r'data-worker="(\d+)"', row)]
    assert len(pids) == 2  # NUM_WORKERS in live_env
    for pid in pids:  # live worker processes of the cluster started for this test
        assert os.path.exists(f"/proc/{pid}")
        assert "qcluster" in open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")


# --- 100,000 jobs ------------------------------------------------------------------------------


def fill_table(document, owner) -> dict[str, int]:
    """100,000 conversions of one document, mostly finished, a deep queue, a few running;
    20,000 page results spread over a week (enough for the planner to prefer an index)."""
    now = timezone.now()
    mix = {"completed": 60_000, "queued": 30_000, "failed": 5_000, "cancelled": 4_990, "running": 10}
    rows = []
    for status, count in mix.items():
        running = status == "running"
        rows += [
            Conversion(
                document=document,
                owner=owner,
                status=status,
                priority=(index % 5) * 10 - 20,
                pages_total=1,
                worker_id=f"host:{1000 + index}" if running else "",
                started_at=now if running else None,
                heartbeat_at=now if running else None,
            )
            for index in range(count)
        ]
    Conversion.objects.bulk_create(rows, batch_size=5_000)
    finished = Conversion.objects.filter(status="completed").values_list("pk", flat=True)[:20_000]
    PageResult.objects.bulk_create(
        (PageResult(conversion_id=pk, page_no=0, engine="textlayer") for pk in finished), batch_size=5_000
    )
    with connection.cursor() as cursor:
        cursor.execute("UPDATE conversions_pageresult SET created_at = now() - id * interval '30 seconds'")
        # What autovacuum does to a real table: statistics and the visibility map.
        cursor.execute("VACUUM ANALYZE conversions_conversion")
        cursor.execute("VACUUM ANALYZE conversions_pageresult")
    return mix


def plans_by_table(queries) -> dict[str, str]:
    """EXPLAIN of each captured query, keyed by the conversions table it reads."""
    plans = {}
    with connection.cursor() as cursor:
        for query in queries:
            sql = query["sql"]
            match = re.search(r'FROM "(conversions_\w+)"', sql)
            if match is None:
                continue
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            plans.setdefault(match.group(1), []).append((sql, plan))
    return plans


@pytest.mark.slow  # a load test (30 s): runs with `make bench`
@pytest.mark.django_db(transaction=True)  # VACUUM cannot run inside the test's transaction
def test_queue_page_with_100000_jobs_runs_a_few_indexed_queries(owner, make_document):
    mix = fill_table(make_document(ONE_PAGE), owner)
    cache.clear()  # no cluster stats left by earlier tests: the count below is exact
    staff = staff_client()

    counted = {}
    for url in (QUEUE, QUEUE + "?page=2", QUEUE + "?page=600", QUEUE_LIVE + "?page=300"):
        with CaptureQueriesContext(connection) as captured:
            response = staff.get(url)
        assert response.status_code == 200
        counted[url] = captured.captured_queries
    print("queries per request:", {url: len(queries) for url, queries in counted.items()})
    # session, user, counts, the queue's lanes (jobs per owner and priority: fair share, issue 17),
    # queue page ids, its rows, running, throughput, cluster stats (one cache read while no cluster runs)
    assert {len(queries) for queries in counted.values()} == {9}

    html = response.content.decode()
    assert [cell(html, "data-status", status) for status in Conversion.Status.values] == [
        str(mix[status]) for status in Conversion.Status.values
    ]
    assert len(queued_ids(html)) == 50 and html.count("data-active-task=") == mix["running"]

    for url in (QUEUE + "?page=2", QUEUE + "?page=600"):
        plans = plans_by_table(counted[url])
        for sql, plan in plans["conversions_conversion"] + plans["conversions_pageresult"]:
            print(f"--- {url}: {sql[:150]}...\n{plan}")
        assert len(plans["conversions_conversion"]) == 5  # counts, lanes, queue ids, their rows, running
        assert not [plan for _, plan in plans["conversions_conversion"] if "Seq Scan on conversions_conversion" in plan]
        counts_plan, queue_plan, rows_plan, running_plan = (
            next(plan for sql, plan in plans["conversions_conversion"] if marker in sql)
            for marker in ("GROUP BY", "OFFSET", '"id" IN (', "'running'")
        )
        assert "Index Only Scan using conversion_status" in counts_plan
        assert "Index" in queue_plan and "Index" in running_plan
        assert "conversions_conversion_pkey" in rows_plan
        lanes_plan = next(plan for sql, plan in plans["conversions_conversion"] if 'AS "oldest"' in sql)
        assert "Index Only Scan using conversion_queue_by_owner" in lanes_plan
        [(_, throughput_plan)] = plans["conversions_pageresult"]
        assert "Index Only Scan using pageresult_created_at" in throughput_plan
    # A near page walks the queue's index of one owner's jobs in run order; a deep one may sort a bitmap scan.
    assert "Scan using conversion_queue_by_owner" in queue_plan_of(plans_by_table(counted[QUEUE + "?page=2"]))


def queue_plan_of(plans: dict) -> str:
    return next(plan for sql, plan in plans["conversions_conversion"] if "OFFSET" in sql)
