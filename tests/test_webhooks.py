"""Webhooks in one process: which callback URLs are refused at create, what a final
state records (in its own transaction), the retry schedule, delayed retries as django-q2
messages, and the sweep for lost messages. Delivery to a real receiver by a real
qcluster is in test_webhooks_live.py."""

import base64
import json
import secrets
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import Client
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from conversions import services, webhook_delivery, webhooks
from conversions.models import Conversion, Document, WebhookDelivery
from dotsocr_site.env import env_webhook_secret
from tests.conftest import ONE_PAGE

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def hooks_on(settings):
    settings.WEBHOOK_SECRET = SECRET
    settings.WEBHOOK_ALLOW_HOSTS = []
    return settings


def create(client: Client, callback_url: str, path: str = "/api/v1/conversions"):
    with open(ONE_PAGE, "rb") as upload:
        return client.post(path, {"file": upload, "callback_url": callback_url})


@pytest.mark.parametrize(
    "callback_url",
    [
        "http://127.0.0.1:9/hooks",
        "http://localhost/hooks",
        "http://[::1]/hooks",
        "http://10.1.2.3/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.0.10:8080/hooks",
    ],
)
def test_a_callback_url_on_a_private_or_metadata_address_is_refused_without_the_allow_list(hooks_on, db, callback_url):
    for path in ("/api/v1/conversions", "/api/v1/batches"):
        answer = create(Client(), callback_url, path)
        assert answer.status_code == 400, answer.content
        detail = answer.json()["detail"]
        assert detail.startswith("callback_url: The host ") and "unless listed in WEBHOOK_ALLOW_HOSTS" in detail
    assert not Document.objects.exists() and not Conversion.objects.exists()  # nothing stored


@pytest.mark.parametrize(
    "callback_url, reason",
    [
        ("ftp://example.org/hooks", "Only http and https URLs"),
        ("http://user:secret@example.org/hooks", "user name or password"),
        ("hooks", "Only http and https URLs"),
    ],
)
def test_a_malformed_callback_url_is_a_400_naming_it(hooks_on, db, callback_url, reason):
    answer = create(Client(), callback_url)
    assert answer.status_code == 400 and reason in answer.json()["detail"]


def test_a_callback_url_needs_a_webhook_secret(settings, db):
    settings.WEBHOOK_SECRET = ""
    answer = create(Client(), "http://127.0.0.1/hooks")
    assert answer.status_code == 400
    assert answer.json() == {
        "detail": "callback_url: webhooks are not enabled on this server (WEBHOOK_SECRET is not set)."
    }


def test_an_allowed_host_is_accepted_and_shown(hooks_on, db):
    hooks_on.WEBHOOK_ALLOW_HOSTS = ["127.0.0.1"]
    answer = create(Client(), "http://127.0.0.1:9/hooks")
    assert answer.status_code == 201, answer.content
    assert answer.json()["callback_url"] == "http://127.0.0.1:9/hooks"
    batch = create(Client(), "http://127.0.0.1:9/batch-hooks", "/api/v1/batches")
    assert batch.status_code == 201, batch.content
    assert [conversion["callback_url"] for conversion in batch.json()["conversions"]] == [
        "http://127.0.0.1:9/batch-hooks"
    ]


def deliver_messages() -> list[tuple[str, tuple]]:
    tasks = [SignedPackage.loads(message.payload) for message in OrmQ.objects.all()]
    return [(task["func"], task["args"]) for task in tasks if task["func"] == webhooks.TASK_FUNCTION]


def test_a_final_state_records_its_event_with_the_conversion_as_get_returns_it(
    hooks_on, make_conversion, django_capture_on_commit_callbacks
):
    hooked = make_conversion(ONE_PAGE, callback_url="http://127.0.0.1:9/hooks")
    plain = make_conversion(ONE_PAGE)
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_conversion(conversion=hooked)
        services.cancel_conversion(conversion=plain)

    delivery = WebhookDelivery.objects.get()  # the conversion without a callback_url has none
    assert (delivery.conversion_id, delivery.event_type, delivery.state) == (
        hooked.pk,
        "conversion.cancelled",
        "pending",
    )
    event = json.loads(delivery.body)
    assert event["data"] == Client().get(f"/api/v1/conversions/{hooked.pk}").json()
    assert event["type"] == "conversion.cancelled" and event["timestamp"].startswith(str(timezone.now().year))
    assert deliver_messages() == [(webhooks.TASK_FUNCTION, (str(delivery.pk),))]  # queued once committed


def test_a_rolled_back_final_state_records_no_event(hooks_on, make_conversion):
    hooked = make_conversion(ONE_PAGE, callback_url="http://127.0.0.1:9/hooks")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.cancel_conversion(conversion=hooked)
        raise RuntimeError("the job's transaction fails after the state change")
    assert not WebhookDelivery.objects.exists() and not deliver_messages()


def test_the_retry_schedule_backs_off_exponentially_with_jitter_for_about_a_day(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS, settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS = 5, 6 * 3600
    nominal = [min(5 * 4 ** (tries - 1), 6 * 3600) for tries in range(1, settings.WEBHOOK_MAX_ATTEMPTS)]
    assert nominal[:4] == [5, 20, 80, 320]
    assert 24 * 3600 <= sum(nominal) <= 27 * 3600  # the last of 11 attempts ~25.6 h after the event
    for tries, expected in enumerate(nominal, start=1):
        delays = {webhook_delivery.retry_delay(tries) for _ in range(20)}
        assert all(0.75 * expected <= delay <= 1.25 * expected for delay in delays)
        assert len(delays) > 1  # jittered


def test_a_failed_attempt_is_recorded_and_retried_later_by_a_delayed_message(
    hooks_on, make_conversion, django_capture_on_commit_callbacks
):
    hooks_on.WEBHOOK_RETRY_BASE_SECONDS = 60
    hooked = make_conversion(ONE_PAGE, callback_url="http://127.0.0.1:9/hooks")  # not allowed when sent
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_conversion(conversion=hooked)
    delivery = WebhookDelivery.objects.get()
    OrmQ.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        webhook_delivery.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    (attempt,) = delivery.attempts.all()
    assert attempt.status_code is None and "refused unless listed in WEBHOOK_ALLOW_HOSTS" in attempt.error
    assert delivery.state == "pending" and delivery.tries == 1
    assert 45 <= (delivery.next_attempt_at - timezone.now()).total_seconds() <= 75
    (message,) = OrmQ.objects.all()
    assert message.lock == delivery.next_attempt_at  # no cluster takes it before then
    assert SignedPackage.loads(message.payload)["args"] == (str(delivery.pk),)
    assert webhook_delivery.attempt_delivery(delivery.pk).endswith("not due")  # early message: a no-op
    assert delivery.attempts.count() == 1


def test_the_last_failed_attempt_ends_the_delivery_as_failed(
    hooks_on, make_conversion, django_capture_on_commit_callbacks
):
    hooks_on.WEBHOOK_MAX_ATTEMPTS = 1
    hooked = make_conversion(ONE_PAGE, callback_url="http://127.0.0.1:9/hooks")
    services.cancel_conversion(conversion=hooked)
    delivery = WebhookDelivery.objects.get()
    webhook_delivery.attempt_delivery(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "failed" and delivery.next_attempt_at is None


def test_the_reaper_resends_a_delivery_whose_message_was_lost(
    hooks_on, make_conversion, django_capture_on_commit_callbacks
):
    hooked = make_conversion(ONE_PAGE, callback_url="http://127.0.0.1:9/hooks")
    services.cancel_conversion(conversion=hooked)  # on_commit never runs here: the message is "lost"
    delivery = WebhookDelivery.objects.get()
    assert webhooks.requeue_lost() == 0  # due just now: its message may still come
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=10))
    assert webhooks.requeue_lost() == 1
    assert deliver_messages() == [(webhooks.TASK_FUNCTION, (str(delivery.pk),))]
    assert webhooks.requeue_lost() == 0  # due now again, not overdue


def test_webhook_secret_must_be_a_standard_webhooks_secret(monkeypatch):
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    assert env_webhook_secret("WEBHOOK_SECRET") == SECRET
    for wrong in ("secret", "whsec_c2hvcnQ=", "whsec_not base64!"):
        monkeypatch.setenv("WEBHOOK_SECRET", wrong)
        with pytest.raises(ImproperlyConfigured, match="WEBHOOK_SECRET"):
            env_webhook_secret("WEBHOOK_SECRET")
