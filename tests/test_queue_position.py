"""queue_position: how many queued conversions will be claimed before this one, as
services.claim_next orders them (priority, fair share, age), the same on GET, the list,
WebSocket events, the original /conversion-status and the admin's Queue page."""

import re

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token

from conversions import services
from conversions.models import Conversion
from conversions.progress import events
from conversions.queue_position import claim_order, owner_turns, with_queue_positions
from tests.conftest import ONE_PAGE, upload_of
from tests.test_claim_one_statement import queue, rows_read


def user_client(user) -> Client:
    return Client(headers={"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"})


@pytest.fixture
def two_users(db, settings):
    settings.ALLOW_ANONYMOUS = False
    users = get_user_model().objects
    return users.create_user("ana", password="pw"), users.create_user("ben", password="pw")


def job(user, priority: int) -> Conversion:
    document = services.create_document(owner=user, upload=upload_of(ONE_PAGE), max_pages=10)
    return services.create_conversion(document=document, owner=user, priority=priority)


@pytest.fixture
def busy_worker_and_five_jobs(two_users):
    """Ana's first job runs on the one worker; five wait: Ana's at priority 0 (two) and
    5, Ben's at 0 and 5, created in the order Ana 0, Ana 0, Ben 0, Ana 5, Ben 5."""
    ana, ben = two_users
    busy = job(ana, 0)
    assert services.claim_next(worker_id="host:1").pk == busy.pk
    jobs = {"ana0a": job(ana, 0), "ana0b": job(ana, 0), "ben0": job(ben, 0), "ana5": job(ana, 5), "ben5": job(ben, 5)}
    return busy, jobs


# Priority 5 first. There Ben (nothing running) goes before Ana (one running) although
# Ana's job is older; then Ana's. At priority 0 Ana now has two running, Ben one: Ben's
# job, then Ana's two, oldest first. Priority and age alone would give ana5, ben5, ana0a,
# ana0b, ben0.
EXPECTED = {"ben5": 0, "ana5": 1, "ben0": 2, "ana0a": 3, "ana0b": 4}


def positions_on_get(jobs, clients) -> dict:
    found = {}
    for name, conversion in jobs.items():
        response = clients[conversion.owner.username].get(f"/api/v1/conversions/{conversion.pk}")
        assert response.status_code == 200
        found[name] = response.json()["queue_position"]
    return found


def test_contested_positions_read_a_few_rows_however_long_the_owners_histories(busy_worker_and_five_jobs, two_users):
    """With two owners waiting, positions need each owner's running count and last start:
    once a GROUP BY of every row either owner ever had (60k rows: 38 ms of a 62 ms GET),
    now two index probes per owner, as the claim reads them (conversions/claiming.py)."""
    ana, ben = two_users

    def rows_read_by_the_turns() -> int:
        with CaptureQueriesContext(connection) as captured:
            turns = owner_turns({ana.pk, ben.pk})
        assert (turns[ana.pk][0], turns[ben.pk][0]) == (1, 0)  # Ana's busy job runs
        return sum(rows_read(query["sql"]) for query in captured.captured_queries)

    few = rows_read_by_the_turns()
    history = queue(ana, 150) + queue(ben, 150)  # one document each
    now = timezone.now()
    Conversion.objects.filter(pk__in=[done.pk for done in history]).update(
        status="completed", started_at=now, finished_at=now
    )
    assert rows_read_by_the_turns() <= few + 2


def test_every_position_with_one_busy_worker_and_two_users_at_two_priorities(busy_worker_and_five_jobs, two_users):
    busy, jobs = busy_worker_and_five_jobs
    clients = {user.username: user_client(user) for user in two_users}

    assert positions_on_get(jobs, clients) == EXPECTED
    assert clients["ana"].get(f"/api/v1/conversions/{busy.pk}").json()["queue_position"] is None  # running

    # Exactly what the workers do: successive claims take them in that order.
    by_id = {conversion.pk: name for name, conversion in jobs.items()}
    assert [by_id[pk] for pk in claim_order()] == sorted(EXPECTED, key=EXPECTED.get)
    claimed = [by_id[services.claim_next(worker_id=f"host:{n}").pk] for n in range(2, 7)]
    assert claimed == sorted(EXPECTED, key=EXPECTED.get)


def test_positions_move_after_one_more_claim(busy_worker_and_five_jobs, two_users):
    _, jobs = busy_worker_and_five_jobs
    clients = {user.username: user_client(user) for user in two_users}

    assert services.claim_next(worker_id="host:2").pk == jobs["ben5"].pk

    after = positions_on_get(jobs, clients)
    assert after == {"ben5": None, "ana5": 0, "ben0": 1, "ana0a": 2, "ana0b": 3}


def test_the_list_gives_each_row_its_position_in_a_fixed_number_of_queries(busy_worker_and_five_jobs, two_users):
    _, jobs = busy_worker_and_five_jobs
    ana, _ = two_users
    client = user_client(ana)
    client.get("/api/v1/conversions")  # warm: the token's user, content types

    with CaptureQueriesContext(connection) as few:
        listed = client.get("/api/v1/conversions").json()["results"]
    for _ in range(6):  # many more rows of Ana's, queued
        job(ana, -1)
    with CaptureQueriesContext(connection) as many:
        more = client.get("/api/v1/conversions").json()["results"]

    assert {row["id"]: row["queue_position"] for row in listed} == {
        **{str(jobs[name].pk): EXPECTED[name] for name in ("ana5", "ana0a", "ana0b")},
        str(Conversion.objects.get(status="running").pk): None,
    }
    assert len(more) == len(listed) + 6
    assert sorted(row["queue_position"] for row in more if row["queue_position"] is not None) == [
        1,
        3,
        4,
        5,
        6,
        7,
        8,
        9,
        10,
    ]
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_original_status_route_gives_the_position_as_an_extra_field(busy_worker_and_five_jobs, two_users):
    _, jobs = busy_worker_and_five_jobs
    clients = {user.username: user_client(user) for user in two_users}
    for name, conversion in jobs.items():
        record = clients[conversion.owner.username].get(f"/conversion-status/{conversion.pk}").json()
        assert record["status"] == "pending" and record["queue_position"] == EXPECTED[name]


def test_the_admin_queue_page_lists_them_in_the_same_order(busy_worker_and_five_jobs):
    _, jobs = busy_worker_and_five_jobs
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("admin", "a@example.invalid", "pw"))

    html = staff.get("/admin/conversions/conversion/queue/").content.decode()

    by_id = {str(conversion.pk): name for name, conversion in jobs.items()}
    assert [by_id[pk] for pk in re.findall(r'data-queued="([0-9a-f-]+)"', html)] == sorted(EXPECTED, key=EXPECTED.get)


def test_events_of_a_queued_job_carry_its_position_and_a_running_one_none(busy_worker_and_five_jobs):
    busy, jobs = busy_worker_and_five_jobs
    assert events.build_conversion_event(Conversion.objects.get(pk=jobs["ana0a"].pk))["queue_position"] == 3
    assert "queue_position" not in events.build_conversion_event(Conversion.objects.get(pk=busy.pk))


@pytest.mark.django_db(transaction=True)
def test_the_websocket_snapshot_and_events_of_a_queued_job_carry_its_position(settings, make_conversion):
    from dotsocr_site.asgi import application

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    first, second = make_conversion(ONE_PAGE), make_conversion(ONE_PAGE)

    async def scenario():
        from channels.db import database_sync_to_async

        socket = WebsocketCommunicator(application, f"/ws/v1/conversions/{second.pk}")
        assert (await socket.connect())[0]
        snapshot = await socket.receive_json_from()
        await database_sync_to_async(services.set_priority)(conversion=second, priority=9)  # jumps the queue
        event = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return snapshot, event

    snapshot, event = async_to_sync(scenario)()
    assert snapshot["status"] == "queued" and snapshot["queue_position"] == 1
    assert event["status"] == "queued" and event["queue_position"] == 0
    assert first.pk != second.pk


@pytest.mark.parametrize("seed", range(4))
def test_positions_equal_what_successive_claims_take_on_a_random_queue(db, seed):
    """Three owners, three priorities, some jobs running and some finished before: the
    claim order the positions come from is exactly the order claim_next then takes."""
    import random

    from django.utils import timezone

    chance = random.Random(seed)
    users = [get_user_model().objects.create_user(f"user{n}") for n in range(3)]
    document = services.create_document(owner=users[0], upload=upload_of(ONE_PAGE), max_pages=10)
    now = timezone.now()
    for user in users:  # history: running jobs and finished ones, started at various times
        for status in chance.choices(["running", "completed", "none"], k=2):
            if status != "none":
                Conversion.objects.create(
                    document=document,
                    owner=user,
                    status=status,
                    started_at=now - timezone.timedelta(minutes=chance.randint(1, 60)),
                )
    for _ in range(14):
        job(chance.choice(users), chance.choice([0, 0, 3, 7]))

    order = claim_order()
    positions = {pk: position for position, pk in enumerate(order)}
    listed = with_queue_positions(Conversion.objects.filter(status="queued"))
    assert {conversion.pk: conversion.queue_position for conversion in listed} == positions
    claimed = [services.claim_next(worker_id=f"host:{n}").pk for n in range(len(order))]
    assert claimed == order
