"""Idempotency-Key on the native create call: a retried request gets the first answer's
conversion, never a second job; the key reused for another request is refused."""

import threading

import pytest
from django.db import connection
from django_q.models import OrmQ
from rest_framework.test import APIClient

from conversions import services
from conversions.models import Conversion, Document
from tests.conftest import FOUR_PAGES, ONE_PAGE, upload_of


@pytest.fixture
def api(db):
    return APIClient()


def submit(api, key=None, path=FOUR_PAGES, **fields):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return api.post("/api/v1/conversions", {"file": upload_of(path), **fields}, format="multipart", **headers)


def test_a_repeated_request_returns_the_first_conversion(api, settings):
    first = submit(api, "upload-42", priority=3)
    again = submit(api, "upload-42", priority=3)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again["Location"] == first["Location"]
    assert Conversion.objects.count() == 1 and Document.objects.count() == 1
    assert OrmQ.objects.count() == 1  # one job, one message
    assert len(list(settings.UPLOAD_DIR.iterdir())) == 1  # the repeat's upload was not kept


def test_the_same_key_for_another_request_is_refused(api):
    submit(api, "reused")
    other_file = submit(api, "reused", path=ONE_PAGE)
    other_options = submit(api, "reused", priority=9)
    for response in (other_file, other_options):
        assert response.status_code == 422
        assert "Idempotency-Key was already used for a different request" in response.json()["detail"]
    assert Conversion.objects.count() == 1


def test_without_a_key_every_request_is_a_new_conversion(api):
    submit(api)
    submit(api)
    assert Conversion.objects.count() == 2


def test_keys_are_per_user(api, django_user_model):
    submit(api, "shared-key")
    other = APIClient()
    other.force_authenticate(django_user_model.objects.create_user("bob"))
    response = other.post(
        "/api/v1/conversions", {"file": upload_of(FOUR_PAGES)}, format="multipart", HTTP_IDEMPOTENCY_KEY="shared-key"
    )
    assert response.status_code == 201
    assert Conversion.objects.count() == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey", "caf\u00e9"])
def test_a_malformed_key_is_a_400(api, key):
    response = submit(api, key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert Conversion.objects.count() == 0


def test_concurrent_requests_with_one_key_make_one_conversion(transactional_db, settings):
    """Racing retries (a client that timed out and sent again at once), each on its own
    database connection: the unique key decides, the losers answer with the winner's
    conversion and remove the upload they had stored."""
    owner = services.default_owner()
    start = threading.Barrier(6)
    answers, errors = [], []

    def send():
        try:
            start.wait()
            answers.append(
                services.submit_conversion(owner=owner, upload=upload_of(FOUR_PAGES), idempotency_key="race-1")
            )
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(created for _, created in answers) == [False] * 5 + [True]
    assert len({conversion.pk for conversion, _ in answers}) == 1
    assert Conversion.objects.count() == 1 and Document.objects.count() == 1
    assert len(list(settings.UPLOAD_DIR.iterdir())) == 1
