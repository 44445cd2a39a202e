"""The admin's actions change jobs only through services, and say why when they cannot."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from conversions import services
from conversions.models import Conversion
from tests.conftest import ONE_PAGE
from workers import pipeline


@pytest.fixture
def staff(db):
    user = get_user_model().objects.create_superuser("admin", "admin@example.invalid", "correct horse battery")
    client = Client()
    client.force_login(user)
    return client


def act(staff, action, conversions):
    return staff.post("/admin/conversions/conversion/", {
        "action": action, "_selected_action": [str(conversion.pk) for conversion in conversions],
    }, follow=True)


def test_admin_lists_conversions(staff, make_conversion):
    conversion = make_conversion(ONE_PAGE)
    page = staff.get("/admin/conversions/conversion/")
    assert page.status_code == 200 and str(conversion.pk) in page.content.decode()
    assert staff.get(f"/admin/conversions/conversion/{conversion.pk}/change/").status_code == 200


def test_cancel_and_retry_actions(staff, make_conversion):
    queued, done = make_conversion(ONE_PAGE), make_conversion(ONE_PAGE)
    pipeline.run_conversion(str(done.pk))  # runs the oldest queued job
    queued, done = Conversion.objects.get(pk=queued.pk), Conversion.objects.get(pk=done.pk)
    finished, waiting = (queued, done) if queued.status == "completed" else (done, queued)

    page = act(staff, "cancel", [waiting, finished]).content.decode()
    assert Conversion.objects.get(pk=waiting.pk).status == "cancelled"
    assert "cannot be cancelled" in page and "Cancelled: 1 conversion(s)." in page

    act(staff, "retry", [waiting])
    assert Conversion.objects.get(pk=waiting.pk).status == "queued"


def test_priority_actions(staff, make_conversion):
    conversion = make_conversion(ONE_PAGE)
    act(staff, "raise_priority", [conversion])
    act(staff, "raise_priority", [conversion])
    act(staff, "lower_priority", [conversion])
    assert Conversion.objects.get(pk=conversion.pk).priority == 10


def test_admin_needs_staff(db):
    response = Client().get("/admin/conversions/conversion/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
