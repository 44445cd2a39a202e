"""Limits per user: submissions per period (429 with Retry-After), conversions waiting at
once (429), and a fair share of the workers at equal priority."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversions import services
from conversions.models import Conversion, Document
from tests.conftest import ONE_PAGE, upload_of
from tests.security_support import FAST_PASSWORD_HASHERS, make_user, token_client
from workers import pipeline


@pytest.fixture
def users(db, settings):
    settings.ALLOW_ANONYMOUS = False
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
    return make_user("alice"), make_user("bob")


def pdf(name="doc.pdf"):
    return SimpleUploadedFile(name, ONE_PAGE.read_bytes(), content_type="application/pdf")


SUBMISSIONS = {
    "native upload": lambda client: client.post("/api/v1/documents", {"file": pdf()}, format="multipart"),
    "native conversion": lambda client: client.post("/api/v1/conversions", {"file": pdf()}, format="multipart"),
    "original upload": lambda client: client.post("/upload", {"file": pdf()}, format="multipart"),
    "original convert": lambda client: client.post("/convert", {"filename": "doc.pdf"}, format="json"),
}


@pytest.mark.parametrize("route", sorted(SUBMISSIONS))
def test_submissions_past_the_rate_get_429_with_retry_after(users, settings, route):
    for user in users:  # something for /convert to convert
        services.create_document(owner=user, upload=pdf(), max_pages=10)
    settings.SUBMIT_RATE = "2/min"
    alice, bob = (token_client(user) for user in users)
    submit = SUBMISSIONS[route]
    assert [submit(alice).status_code in (200, 201) for _ in range(2)] == [True, True]
    throttled = submit(alice)
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert "throttled" in throttled.json()["detail"]
    assert submit(bob).status_code in (200, 201)  # per user
    assert alice.get("/api/v1/conversions").status_code == 200  # reads are not counted


def test_rate_off_means_no_limit(users, settings):
    settings.SUBMIT_RATE = None
    alice = token_client(users[0])
    assert {alice.post("/api/v1/documents", {"file": pdf()}, format="multipart").status_code for _ in range(5)} == {201}


def test_queued_jobs_past_the_cap_get_429_and_store_nothing(users, settings):
    settings.MAX_QUEUED_PER_USER = 2
    alice, bob = (token_client(user) for user in users)
    first, second = (alice.post("/api/v1/conversions", {"file": pdf()}, format="multipart") for _ in range(2))
    assert first.status_code == second.status_code == 201
    refused = alice.post("/api/v1/conversions", {"file": pdf()}, format="multipart")
    assert refused.status_code == 429
    assert refused.json() == {
        "detail": "You have 2 conversions waiting to run; the limit is 2 per user. "
        "Submit more once some have started, or cancel some."
    }
    assert Document.objects.filter(owner=users[0]).count() == 2  # refused before storing the upload
    by_document = alice.post("/api/v1/conversions", {"document": first.json()["document"]["id"]}, format="json")
    assert by_document.status_code == 429
    assert bob.post("/api/v1/conversions", {"file": pdf()}, format="multipart").status_code == 201

    alice.post(f"/api/v1/conversions/{first.json()['id']}/cancel")
    assert alice.post("/api/v1/conversions", {"file": pdf()}, format="multipart").status_code == 201
    retry = alice.post(f"/api/v1/conversions/{first.json()['id']}/retry")
    assert retry.status_code == 429 and Conversion.objects.get(pk=first.json()["id"]).status == "cancelled"


def test_original_convert_route_has_the_same_cap(users, settings):
    settings.MAX_QUEUED_PER_USER = 1
    alice = token_client(users[0])
    alice.post("/upload", {"file": pdf()}, format="multipart")
    assert alice.post("/convert", {"filename": "doc.pdf"}, format="json").status_code == 200
    refused = alice.post("/convert", {"filename": "doc.pdf"}, format="json")
    assert refused.status_code == 429 and "limit is 1" in refused.json()["detail"]


def test_no_cap_when_zero(users, settings):
    settings.MAX_QUEUED_PER_USER = 0
    alice = token_client(users[0])
    document = alice.post("/api/v1/documents", {"file": pdf()}, format="multipart").json()["id"]
    assert {alice.post("/api/v1/conversions", {"document": document}, format="json").status_code for _ in range(4)} == {
        201
    }


# --- fair share ----------------------------------------------------------------------------


def queue(owner, count: int) -> list[Conversion]:
    document = services.create_document(owner=owner, upload=upload_of(ONE_PAGE), max_pages=10)
    return [services.create_conversion(document=document, owner=owner) for _ in range(count)]


def test_a_later_user_is_not_starved_by_a_long_queue(users):
    alice, bob = users
    queue(alice, 10)
    bobs = {job.pk for job in queue(bob, 2)}  # queued after all of Alice's, same priority

    for _ in range(12):  # one worker, one job at a time
        assert pipeline.run_conversion("wake-up") == "completed"

    ran = list(Conversion.objects.order_by("started_at").values_list("pk", flat=True))
    bob_turns = [turn for turn, pk in enumerate(ran) if pk in bobs]
    assert bob_turns == [1, 3]  # taking turns: Alice, Bob, Alice, Bob, then the rest of Alice's


def test_the_user_with_fewer_running_jobs_goes_first(users):
    alice, bob = users
    queue(alice, 3)
    running = services.claim_next(worker_id="worker-1")
    assert running.owner == alice
    (bobs,) = queue(bob, 1)
    assert services.claim_next(worker_id="worker-2").pk == bobs.pk  # Alice already has one running
    assert services.claim_next(worker_id="worker-3").owner == alice


def test_priority_still_comes_before_fair_share(users):
    alice, bob = users
    queue(alice, 2)
    urgent = services.create_conversion(document=Document.objects.filter(owner=alice).first(), owner=alice, priority=5)
    queue(bob, 1)
    services.claim_next(worker_id="worker-1")
    assert Conversion.objects.get(pk=urgent.pk).status == "running"
