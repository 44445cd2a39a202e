"""DELETE /api/v1/conversions/<id> and /api/v1/documents/<id>: rows and files go (204),
for the owner or staff; a running conversion is cancelled first; others' answer 404.
/metrics reports the bytes stored by kind."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from conversions import services
from conversions.models import Conversion, Document, PageResult
from tests.conftest import ONE_PAGE, upload_of
from tests.conftest import stored as stored_file
from workers import pipeline


def client_of(user) -> Client:
    return Client(headers={"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"})


# Files are removed once the transaction commits: these tests commit, as requests do.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def users(settings):
    settings.ALLOW_ANONYMOUS = False
    make = get_user_model().objects
    return make.create_user("ana", password="pw"), make.create_user("ben", password="pw")


def completed_of(user) -> Conversion:
    document = services.create_document(owner=user, upload=upload_of(ONE_PAGE), max_pages=10)
    conversion = services.create_conversion(document=document, owner=user)
    assert pipeline.run_one(conversion.pk) == "completed"
    return Conversion.objects.select_related("document").get(pk=conversion.pk)


def test_the_owner_deletes_a_conversion_its_pages_and_files(users):
    ana, ben = users
    conversion = completed_of(ana)
    folder = stored_file(conversion.output_dir)
    assert folder.is_dir()

    assert client_of(ben).delete(f"/api/v1/conversions/{conversion.pk}").status_code == 404  # not his
    assert Conversion.objects.filter(pk=conversion.pk).exists()
    response = client_of(ana).delete(f"/api/v1/conversions/{conversion.pk}")

    assert response.status_code == 204
    assert not Conversion.objects.filter(pk=conversion.pk).exists()
    assert not PageResult.objects.filter(conversion_id=conversion.pk).exists()
    assert not folder.exists()
    assert Document.objects.filter(pk=conversion.document_id).exists()  # the upload stays
    assert client_of(ana).get(f"/api/v1/conversions/{conversion.pk}").status_code == 404


def test_staff_may_delete_anyones_conversion(users):
    ana, _ = users
    conversion = completed_of(ana)
    staff = get_user_model().objects.create_user("root", password="pw", is_staff=True)
    assert client_of(staff).delete(f"/api/v1/conversions/{conversion.pk}").status_code == 204
    assert not Conversion.objects.filter(pk=conversion.pk).exists()


def test_a_running_conversion_is_cancelled_then_deleted_and_its_worker_stops(users):
    ana, _ = users
    document = services.create_document(owner=ana, upload=upload_of(ONE_PAGE), max_pages=10)
    queued = services.create_conversion(document=document, owner=ana)
    running = services.claim_next(worker_id=services.current_worker_id())
    assert running.pk == queued.pk and running.status == "running"

    assert client_of(ana).delete(f"/api/v1/conversions/{running.pk}").status_code == 204

    assert not Conversion.objects.filter(pk=running.pk).exists()
    outcome, _ = pipeline.run_claimed(running)  # the worker goes on with the job it held
    assert outcome == "lost"  # its first write finds the job gone; nothing is published
    assert not PageResult.objects.filter(conversion_id=running.pk).exists()


def test_deleting_a_queued_conversion_cancels_it_first(users, monkeypatch):
    ana, _ = users
    document = services.create_document(owner=ana, upload=upload_of(ONE_PAGE), max_pages=10)
    queued = services.create_conversion(document=document, owner=ana)
    cancelled = []
    original = services.cancel_conversion
    monkeypatch.setattr(services, "cancel_conversion", lambda **kw: cancelled.append(kw) or original(**kw))

    assert client_of(ana).delete(f"/api/v1/conversions/{queued.pk}").status_code == 204
    assert [kw["conversion"].pk for kw in cancelled] == [queued.pk]
    assert services.claim_next(worker_id="host:1") is None


def test_deleting_a_document_removes_its_conversions_and_every_file(users):
    ana, ben = users
    conversion = completed_of(ana)
    document = conversion.document
    second = services.create_conversion(document=document, owner=ana)  # queued
    files = [stored_file(document.stored_path), stored_file(conversion.output_dir)]

    assert client_of(ben).delete(f"/api/v1/documents/{document.pk}").status_code == 404
    response = client_of(ana).delete(f"/api/v1/documents/{document.pk}")

    assert response.status_code == 204
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not Conversion.objects.filter(pk__in=[conversion.pk, second.pk]).exists()
    assert not any(path.exists() for path in files)


def stored(kind: str) -> float:
    staff, _ = get_user_model().objects.get_or_create(username="scraper", defaults={"is_staff": True})
    client = Client()
    client.force_login(staff)
    for family in text_string_to_metric_families(client.get("/metrics").content.decode()):
        for sample in family.samples:
            if sample.name == "dotsocr_stored_bytes" and sample.labels == {"kind": kind}:
                return sample.value
    raise AssertionError(f"no dotsocr_stored_bytes for {kind}")


def test_metrics_report_the_bytes_stored_by_kind(users):
    ana, _ = users
    conversion = completed_of(ana)
    folder = stored_file(conversion.output_dir)

    assert stored("uploads") == ONE_PAGE.stat().st_size
    assert stored("outputs") == sum(path.stat().st_size for path in folder.iterdir()) > 0

    client_of(ana).delete(f"/api/v1/documents/{conversion.document_id}")
    assert stored("uploads") == 0 and stored("outputs") == 0
