"""RESULT_TTL_HOURS: a scheduled job removes the files of old finished conversions and
keeps their rows, marked expired; their file routes answer 410 saying when."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_q.models import Schedule

from conversions import services
from conversions.models import Conversion, Document, PageResult
from tests.conftest import ONE_PAGE, stored
from workers import pipeline, tasks

# Files are removed once the expiry's transaction commits: these tests commit, as the task does.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def finished_hours_ago(make_conversion):
    def make(hours: float) -> Conversion:
        conversion = make_conversion(ONE_PAGE)
        assert pipeline.run_conversion(str(conversion.pk)) == "completed"
        Conversion.objects.filter(pk=conversion.pk).update(finished_at=timezone.now() - timedelta(hours=hours))
        Document.objects.filter(pk=conversion.document_id).update(created_at=timezone.now() - timedelta(hours=hours))
        return Conversion.objects.select_related("document").get(pk=conversion.pk)

    return make


@pytest.mark.django_db  # before the flushing transactional tests: the migration's row is there
def test_the_expiry_job_is_scheduled_in_django_q():
    schedule = Schedule.objects.get(name="dotsocr-result-expiry")
    assert schedule.func == "workers.tasks.expire_results"
    assert schedule.schedule_type == Schedule.MINUTES and schedule.minutes == 15 and schedule.repeats == -1
    assert callable(tasks.expire_results)


def test_old_results_lose_their_files_and_keep_their_rows(settings, finished_hours_ago):
    settings.RESULT_TTL_HOURS = 2
    old, recent = finished_hours_ago(3), finished_hours_ago(1)
    old_files = [stored(old.output_dir), stored(old.document.stored_path)]
    assert all(path.exists() for path in old_files)

    assert tasks.expire_results() == {"conversions": 1, "documents": 1}

    old.refresh_from_db()
    old.document.refresh_from_db()
    assert old.status == "completed" and old.expired_at is not None and old.document.expired_at is not None
    assert not any(path.exists() for path in old_files)
    assert PageResult.objects.filter(conversion=old).get().markdown == ""  # the text goes with the files
    assert stored(recent.output_dir).exists() and Conversion.objects.get(pk=recent.pk).expired_at is None
    assert tasks.expire_results() == {"conversions": 0, "documents": 0}  # idempotent


def test_keep_forever_is_the_default(settings, finished_hours_ago):
    assert settings.RESULT_TTL_HOURS == 0
    conversion = finished_hours_ago(24 * 365)
    assert tasks.expire_results() == {"conversions": 0, "documents": 0}
    assert stored(conversion.output_dir).exists()


def test_a_document_still_in_use_keeps_its_upload(settings, finished_hours_ago, owner):
    settings.RESULT_TTL_HOURS = 2
    old = finished_hours_ago(3)
    services.create_conversion(document=old.document, owner=owner)  # queued again today

    assert tasks.expire_results() == {"conversions": 1, "documents": 0}
    assert stored(old.document.stored_path).exists()


def test_file_routes_of_an_expired_conversion_answer_410_saying_when(settings, finished_hours_ago):
    settings.RESULT_TTL_HOURS = 2
    conversion = finished_hours_ago(3)
    name = min(path.name for path in stored(conversion.output_dir).iterdir())
    tasks.expire_results()
    conversion.refresh_from_db()
    client = Client()
    base = f"/api/v1/conversions/{conversion.pk}"
    stem = conversion.document.stem

    for url in (
        f"{base}/markdown",
        f"{base}/html",
        f"{base}/text",
        f"{base}/pages",
        f"{base}/files/{name}",
        f"{base}/pages/0/image",
        f"{base}/download.zip",
        f"/markdown-files/{stem}",
        f"/markdown/{stem}",
        f"/image/{stem}",
    ):
        response = client.get(url)
        assert response.status_code == 410, url
        assert f"expired at {conversion.expired_at.isoformat()}" in response.json()["detail"], url
    assert client.put(f"/markdown/{stem}", {"content": "x"}, content_type="application/json").status_code == 410
    body = client.get(base).json()
    assert body["status"] == "completed" and body["expired_at"] is not None  # the row is still listed


def test_an_expired_conversion_cannot_be_retried_nor_its_document_converted(settings, finished_hours_ago):
    settings.RESULT_TTL_HOURS = 2
    conversion = finished_hours_ago(3)
    Conversion.objects.filter(pk=conversion.pk).update(status="failed")
    tasks.expire_results()
    client = Client()
    assert client.post(f"/api/v1/conversions/{conversion.pk}/retry").status_code == 409
    again = client.post(
        "/api/v1/conversions", {"document": str(conversion.document_id)}, content_type="application/json"
    )
    assert again.status_code == 400 and "expired" in again.json()["detail"]


def test_the_admin_page_of_an_expired_conversion_says_so(settings, finished_hours_ago):
    from django.contrib.auth import get_user_model

    settings.RESULT_TTL_HOURS = 2
    conversion = finished_hours_ago(3)
    tasks.expire_results()
    conversion.refresh_from_db()
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("root", "r@example.invalid", "pw"))

    response = staff.get(f"/admin/conversions/conversion/{conversion.pk}/change/")

    assert response.status_code == 200
    assert f"expired at {conversion.expired_at.isoformat()}" in response.content.decode()
