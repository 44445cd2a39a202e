"""Batches (POST/GET /api/v1/batches): one conversion per file or URL, all or nothing."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from conversions import services
from conversions.models import Batch, Conversion, Document
from tests.conftest import ONE_PAGE, truncated_pdf
from tests.live import pdf_of
from tests.security_support import FAST_PASSWORD_HASHERS, make_user, token_client
from workers import pipeline


@pytest.fixture
def api(db):
    return APIClient()


def pdf_part(name: str, pages: int = 1) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, pdf_of(pages, name), content_type="application/pdf")


def submit(api, files, **fields):
    return api.post("/api/v1/batches", {"file": files, **fields}, format="multipart")


def test_a_batch_of_50_files_makes_50_queued_conversions_in_order(api, settings):
    names = [f"doc-{number:02}.pdf" for number in range(50)]
    response = submit(api, [pdf_part(name) for name in names], priority=3)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["total"] == 50 and body["counts"]["queued"] == 50 and body["counts"]["completed"] == 0
    assert [conversion["document"]["filename"] for conversion in body["conversions"]] == names
    assert {conversion["priority"] for conversion in body["conversions"]} == {3}
    assert {conversion["batch"] for conversion in body["conversions"]} == {body["id"]}
    assert response["Location"] == f"/api/v1/batches/{body['id']}"
    assert Conversion.objects.filter(batch_id=body["id"], status="queued").count() == 50


def test_batch_counts_follow_its_conversions(api):
    body = submit(api, [pdf_part("a.pdf"), pdf_part("b.pdf"), pdf_part("c.pdf")]).json()
    pipeline.run_conversion("wake-up")
    first = Conversion.objects.get(pk=body["conversions"][0]["id"])
    assert first.status == "completed"  # oldest first
    services.cancel_conversion(conversion=Conversion.objects.get(pk=body["conversions"][1]["id"]))
    detail = api.get(f"/api/v1/batches/{body['id']}").json()
    assert (detail["counts"]["completed"], detail["counts"]["cancelled"], detail["counts"]["queued"]) == (1, 1, 1)
    assert [conversion["status"] for conversion in detail["conversions"]] == ["completed", "cancelled", "queued"]


def test_one_bad_file_refuses_the_whole_batch_naming_it(api, settings):
    files = [pdf_part("good-1.pdf"), SimpleUploadedFile("broken.pdf", truncated_pdf()), pdf_part("good-2.pdf")]
    response = submit(api, files)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("broken.pdf: ")
    assert (Batch.objects.count(), Conversion.objects.count(), Document.objects.count()) == (0, 0, 0)
    assert list(settings.UPLOAD_DIR.iterdir()) == []  # the good files stored first are gone too


def test_pages_out_of_range_for_one_file_refuses_the_batch(api):
    response = submit(api, [pdf_part("long.pdf", pages=5), pdf_part("short.pdf", pages=2)], pages="1,4-")
    assert response.status_code == 422
    assert response.json()["detail"] == "short.pdf: pages: '4-' is out of range: the document has 2 pages."
    assert (Batch.objects.count(), Conversion.objects.count(), Document.objects.count()) == (0, 0, 0)


def test_pages_apply_to_each_conversion_of_the_batch(api):
    body = submit(api, [pdf_part("a.pdf", pages=5), pdf_part("b.pdf", pages=3)], pages="2-").json()
    assert [(c["pages"], c["pages_total"]) for c in body["conversions"]] == [("2-", 4), ("2-", 2)]


def test_an_empty_batch_is_a_400(api):
    response = api.post("/api/v1/batches", {"priority": 1}, format="multipart")
    assert response.status_code == 400 and "at least one" in response.json()["detail"]


def test_more_files_than_max_batch_files_is_a_400(api, settings):
    settings.MAX_BATCH_FILES = 2
    response = submit(api, [pdf_part(f"{n}.pdf") for n in range(3)])
    assert response.status_code == 400 and "MAX_BATCH_FILES" in response.json()["detail"]
    assert Document.objects.count() == 0


@pytest.fixture
def users(db, settings):
    settings.ALLOW_ANONYMOUS = False
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
    return make_user("alice"), make_user("bob")


def test_a_batch_is_its_owners_alone(users):
    alice, bob = (token_client(user) for user in users)
    batch = submit(alice, [pdf_part("a.pdf")]).json()
    assert alice.get(f"/api/v1/batches/{batch['id']}").status_code == 200
    refused = bob.get(f"/api/v1/batches/{batch['id']}")
    assert refused.status_code == 404 and refused.json() == {"detail": f"Batch not found: {batch['id']}"}
    assert bob.get("/api/v1/batches/not-a-uuid").status_code == 404


def test_a_batch_of_500_counts_once_against_the_submission_rate(users, settings):
    settings.SUBMIT_RATE = "2/min"
    settings.MAX_QUEUED_PER_USER = 10000
    alice = token_client(users[0])
    single = ONE_PAGE.read_bytes()
    files = [SimpleUploadedFile(f"page-{n:03}.pdf", single, content_type="application/pdf") for n in range(500)]
    response = submit(alice, files)
    assert response.status_code == 201, response.content[:300]
    assert response.json()["total"] == 500
    assert submit(alice, [pdf_part("second.pdf")]).status_code == 201
    assert submit(alice, [pdf_part("third.pdf")]).status_code == 429  # the rate counts requests


def test_a_batch_past_the_queued_cap_is_refused_whole(users, settings):
    settings.MAX_QUEUED_PER_USER = 3
    alice = token_client(users[0])
    assert submit(alice, [pdf_part("a.pdf"), pdf_part("b.pdf")]).status_code == 201
    refused = submit(alice, [pdf_part("c.pdf"), pdf_part("d.pdf")])
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("You have 2 conversions waiting to run and this batch adds 2")
    assert Conversion.objects.count() == 2 and Document.objects.count() == 2


def test_fair_share_serves_a_later_user_between_the_jobs_of_a_500_file_batch(users, settings):
    settings.SUBMIT_RATE = None
    alice, bob = (token_client(user) for user in users)
    single = ONE_PAGE.read_bytes()
    files = [SimpleUploadedFile(f"scan-{n:03}.pdf", single, content_type="application/pdf") for n in range(500)]
    assert submit(alice, files, engine="noop").status_code == 201
    later = submit(bob, [pdf_part("bob-1.pdf"), pdf_part("bob-2.pdf")], engine="noop").json()  # after all 500

    for _ in range(4):  # one worker, one job at a time
        assert pipeline.run_conversion("wake-up") == "completed"

    ran = list(Conversion.objects.exclude(started_at=None).order_by("started_at").values_list("pk", flat=True))
    bobs = {conversion["id"] for conversion in later["conversions"]}
    assert [turn for turn, pk in enumerate(ran) if str(pk) in bobs] == [1, 3]  # Alice, Bob, Alice, Bob
    assert Conversion.objects.filter(owner=users[0], status="queued").count() == 498
