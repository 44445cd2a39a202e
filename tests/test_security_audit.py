"""Admin actions leave an audit trail (Django's LogEntry), shown on the conversion."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model

from conversions import services
from tests.conftest import ONE_PAGE, upload_of
from tests.security_support import FAST_PASSWORD_HASHERS, PASSWORD, session_client


@pytest.fixture
def staff(db, settings):
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
    return get_user_model().objects.create_superuser("root", "root@example.invalid", PASSWORD)


@pytest.fixture
def conversion(staff):
    document = services.create_document(owner=staff, upload=upload_of(ONE_PAGE), max_pages=10)
    return services.create_conversion(document=document, owner=staff)


def act(browser, action, conversion):
    return browser.post("/admin/conversions/conversion/", {"action": action, "_selected_action": [str(conversion.pk)]})


def test_admin_actions_are_logged_and_shown_on_the_conversion(staff, conversion):
    browser = session_client(staff)
    act(browser, "raise_priority", conversion)
    act(browser, "cancel", conversion)
    act(browser, "cancel", conversion)  # refused: already cancelled, so not logged

    entries = LogEntry.objects.filter(object_id=str(conversion.pk)).order_by("action_time")
    assert [(entry.user, entry.get_change_message()) for entry in entries] == [
        (staff, "Priority raised: now queued, priority 10"),
        (staff, "Cancelled: now cancelled, priority 10"),
    ]
    change_page = browser.get(f"/admin/conversions/conversion/{conversion.pk}/change/").content.decode()
    history_url = f"/admin/conversions/conversion/{conversion.pk}/history/"
    assert history_url in change_page
    history = browser.get(history_url).content.decode()
    assert "Priority raised: now queued, priority 10" in history and "Cancelled: now cancelled" in history
