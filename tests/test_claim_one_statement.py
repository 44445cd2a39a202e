"""The claim of the next job is one statement (conversions/claiming.py) and keeps
claim_next's order: priority, then fair share between owners, then age."""

import random
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversions import claiming, services
from conversions.models import Conversion, Document
from tests.conftest import ONE_PAGE, upload_of
from tests.security_support import FAST_PASSWORD_HASHERS, make_user


@pytest.fixture
def users(db, settings):
    settings.ALLOW_ANONYMOUS = False
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
    return [make_user(name) for name in ("alice", "bob", "carol")]


def queue(owner, count: int, priority: int = 0) -> list[Conversion]:
    document = services.create_document(owner=owner, upload=upload_of(ONE_PAGE), max_pages=10)
    return [services.create_conversion(document=document, owner=owner, priority=priority) for _ in range(count)]


def next_by_the_rule() -> Conversion | None:
    """claim_next's documented order, read step by step with the ORM."""
    queued = Conversion.objects.filter(status="queued")
    if not queued.exists():
        return None
    top = queued.order_by("-priority").first().priority
    owners = queued.filter(priority=top).values_list("owner", flat=True).distinct()
    never = datetime.min.replace(tzinfo=UTC)

    def turn(owner_id):
        mine = Conversion.objects.filter(owner_id=owner_id).aggregate(
            running=Count("pk", filter=Q(status="running")),
            last_started=Max("started_at"),
            waiting_since=Min("created_at", filter=Q(status="queued", priority=top)),
        )
        return mine["running"], mine["last_started"] or never, mine["waiting_since"]

    fairest = min(owners, key=turn)
    return queued.filter(priority=top, owner_id=fairest).order_by("created_at").first()


def test_claiming_the_next_job_is_one_statement_that_brings_its_document(make_conversion):
    job = make_conversion(ONE_PAGE)
    with CaptureQueriesContext(connection) as captured:
        claimed = services.claim_next(worker_id="host:1")
        assert claimed.document.filename == "minimal-document.pdf"  # loaded with it: no query
    assert claimed.pk == job.pk and claimed.status == "running" and claimed.attempts == 1
    assert claimed.worker_id == "host:1" and claimed.started_at is not None
    assert [query["sql"].split()[0] for query in captured.captured_queries] == ["WITH"]
    row = Conversion.objects.get(pk=job.pk)
    assert (row.status, row.worker_id, row.attempts, row.event_seq) == ("running", "host:1", 1, claimed.event_seq)


def test_the_one_statement_claim_follows_priority_fair_share_and_age(users):
    randomizer = random.Random(20)
    for owner in users:
        for priority in (0, 0, 5):
            queue(owner, randomizer.randint(1, 4), priority=priority)
    # Earlier service: bob ran a job a minute ago, carol an hour ago, alice never.
    long_ago = timezone.now() - timedelta(hours=2)
    for owner, minutes in ((users[1], 1), (users[2], 60)):
        done = queue(owner, 1, priority=-1)[0]
        Conversion.objects.filter(pk=done.pk).update(
            status="completed", started_at=timezone.now() - timedelta(minutes=minutes), created_at=long_ago
        )
    claimed_ids = []
    while True:
        expected = next_by_the_rule()
        claimed = services.claim_next(worker_id=f"host:{len(claimed_ids)}")
        assert (claimed and claimed.pk) == (expected and expected.pk)
        if claimed is None:
            break
        claimed_ids.append(claimed.pk)
        if randomizer.random() < 0.5:  # some jobs end, so running counts go up and down
            Conversion.objects.filter(pk=randomizer.choice(claimed_ids), status="running").update(status="completed")
    assert len(claimed_ids) == Conversion.objects.exclude(priority=-1).count()


@pytest.mark.django_db(transaction=True)
def test_when_the_fair_owners_job_is_being_claimed_the_next_owner_is_served(users):
    alice, bob, _ = users
    (alices,) = queue(alice, 1)
    (bobs,) = queue(bob, 1)
    params = {
        key: value
        for key, value in connection.get_connection_params().items()
        if key not in ("cursor_factory", "context")
    }
    with psycopg.connect(**params) as other_worker:
        with other_worker.transaction():  # another worker holds Alice's job, mid-claim
            other_worker.execute("SELECT id FROM conversions_conversion WHERE id = %s FOR UPDATE", (alices.pk,))
            claimed = services.claim_next(worker_id="host:2")
    assert claimed.pk == bobs.pk
    assert Conversion.objects.get(pk=alices.pk).status == "queued"


def rows_read_by_a_claim() -> int:
    """Rows of the conversions table that one claim reads, its writes rolled back."""
    statement = claiming.CLAIM.format(
        conversion=f'"{Conversion._meta.db_table}"',
        document=f'"{Document._meta.db_table}"',
        conversion_columns="claimed.id",
        document_columns="document.id",
    )
    return rows_read(statement, {"worker": "host:1", "now": timezone.now()})


def rows_read(statement: str, params=None) -> int:
    """Rows of the conversions table that ``statement`` reads (EXPLAIN ANALYZE: rows each
    scan returned or filtered out, times its loops); what it writes is rolled back."""
    table = Conversion._meta.db_table

    def read(node: dict) -> int:
        own = 0
        if node.get("Relation Name") == table and "Scan" in node["Node Type"]:
            removed = node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
            own = (node["Actual Rows"] + removed) * node["Actual Loops"]
        return own + sum(read(child) for child in node.get("Plans", []))

    with pytest.raises(RuntimeError), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params)
            ((plan,),) = cursor.fetchall()
        rows = read(plan[0]["Plan"])
        raise RuntimeError("roll the statement back")
    return rows


def test_a_claim_reads_a_few_rows_however_deep_the_backlog_and_long_the_history(users):
    """Fair share once read every queued row (GROUP BY owner) and every row of the
    owner's history (their running count and last start) at each claim: a 10,000-job
    backlog cost 5 ms of PostgreSQL per claim. Now one index probe per owner."""
    alice, bob, _ = users
    queue(alice, 3)
    queue(bob, 3)
    few = rows_read_by_a_claim()
    history = queue(alice, 300) + queue(bob, 100)
    Conversion.objects.filter(pk__in=[job.pk for job in history]).update(
        status="completed", started_at=timezone.now(), finished_at=timezone.now()
    )
    queue(alice, 300)
    queue(bob, 300)
    many = rows_read_by_a_claim()
    assert many <= few + 4, (few, many)
    expected = next_by_the_rule()
    assert services.claim_next(worker_id="host:1").pk == expected.pk
