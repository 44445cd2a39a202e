"""The session store (dotsocr_site/sessions.py): Django's database sessions, loaded by one
written-out SELECT; what it loads is what Django's own store loads."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore as DjangoSessionStore
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dotsocr_site.sessions import SessionStore
from tests.security_support import FAST_PASSWORD_HASHERS, make_user, session_client


@pytest.fixture
def signed_in_only(settings):
    settings.ALLOW_ANONYMOUS = False
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS


def saved_session(**data) -> str:
    session = SessionStore()
    session.update(data)
    session.save()
    return str(session.session_key)


def test_the_site_loads_sessions_with_this_store():
    assert settings.SESSION_ENGINE == "dotsocr_site.sessions"


def test_a_session_loads_its_data_in_one_select_as_djangos_store_does(db):
    key = saved_session(answer=42, name="alice")
    with CaptureQueriesContext(connection) as captured:
        loaded = SessionStore(key).load()
    assert loaded == DjangoSessionStore(key).load() == {"answer": 42, "name": "alice"}
    [query] = captured.captured_queries
    assert query["sql"].startswith('SELECT session_data FROM "django_session" WHERE session_key = ')


@pytest.mark.parametrize("expired", [True, False])
def test_an_expired_or_unknown_session_loads_nothing_and_forgets_its_key(db, expired):
    if expired:
        key = saved_session(answer=42)
        Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    else:
        key = "nosuchsessionkey0123456789abcdef"
    session = SessionStore(key)
    assert session.load() == {} and session.session_key is None
    django_session = DjangoSessionStore(key)
    assert django_session.load() == {} and django_session.session_key is None


def test_a_signed_in_session_signs_requests_in_until_it_expires_or_logs_out(db, signed_in_only):
    alice = make_user("alice")
    browser = session_client(alice)
    assert browser.get("/api/v1/conversions").status_code == 200
    key = browser.cookies["sessionid"].value
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert browser.get("/api/v1/conversions").status_code in (401, 403)

    browser = session_client(alice)
    cookie = browser.cookies["sessionid"].value
    browser.post("/accounts/logout/")
    browser.cookies["sessionid"] = cookie  # a copy of the cookie kept from before the logout
    assert browser.get("/api/v1/conversions").status_code in (401, 403)
