"""Webhooks across real processes: daphne takes a conversion with a callback_url, a real
qcluster converts it and delivers the signed event to a receiver on loopback in this
process, which checks every signature with the standardwebhooks package."""

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from conversions.models import Conversion, WebhookDelivery
from tests.live import free_port, pdf_of, start_cluster, start_web, wait_for_status

pytestmark = pytest.mark.acceptance
SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
TIMEOUT_SECONDS = 1.5
WEBHOOK_ENV = {
    "WEBHOOK_SECRET": SECRET,
    "WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
    "WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
    "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
    "WEBHOOK_MAX_ATTEMPTS": "3",
}


class Receiver:
    """A webhook receiver on 127.0.0.1: answers each POST with the next of ``answers``
    (an HTTP status, or "hang": no answer until the test ends) and keeps what came."""

    def __init__(self, answers: list):
        self.answers, self.received, self.release = list(answers), [], threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    event, error = Webhook(SECRET).verify(body, headers), None
                except WebhookVerificationError as refusal:
                    event, error = None, f"{type(refusal).__name__}: {refusal}"
                answer = receiver.answers.pop(0) if len(receiver.answers) > 1 else receiver.answers[0]
                receiver.received.append(
                    {
                        "at": time.monotonic(),
                        "headers": headers,
                        "body": body,
                        "event": event,
                        "error": error,
                        "answer": answer,
                    }
                )
                if answer == "hang":
                    receiver.release.wait(60)
                    return
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/dotsocr"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.received) >= count, f"{len(self.received)} of {count} deliveries arrived"
        return self.received

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_with():
    made = []

    def make(answers):
        made.append(Receiver(answers))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture(scope="module")
def webhook_web(live_env, tmp_path_factory):
    port = free_port()
    web = start_web({**live_env, **WEBHOOK_ENV}, port, tmp_path_factory.mktemp("webhook-web"))
    yield f"http://127.0.0.1:{port}"
    web.stop()


@pytest.fixture
def webhook_client(webhook_web, transactional_db, live_env, tmp_path):
    cluster = start_cluster({**live_env, **WEBHOOK_ENV}, tmp_path)
    try:
        with httpx.Client(base_url=webhook_web, timeout=30) as client:
            yield client
    finally:
        cluster.stop()


def submit_with_callback(client: httpx.Client, callback_url: str) -> dict:
    created = client.post(
        "/api/v1/conversions",
        data={"engine": "textlayer", "callback_url": callback_url},
        files={"file": ("hooked.pdf", pdf_of(2, "hooked"), "application/pdf")},
    )
    assert created.status_code == 201, created.text
    return created.json()


def attempts_of(conversion_id: str, count: int, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivery = WebhookDelivery.objects.filter(conversion_id=conversion_id).first()
        if delivery is not None and delivery.attempts.count() >= count:
            return list(delivery.attempts.order_by("started_at"))
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} attempts recorded for {conversion_id}")


def test_a_receiver_that_fails_twice_gets_three_signed_attempts_of_one_event(webhook_client, receiver_with):
    receiver = receiver_with([500, 500, 200])
    conversion = submit_with_callback(webhook_client, receiver.url)
    final = wait_for_status(webhook_client, conversion["id"])
    assert final["status"] == "completed" and final["callback_url"] == receiver.url

    received = receiver.wait_for(3)
    time.sleep(1)  # nothing more comes once one was accepted
    assert len(received) == 3 and [entry["answer"] for entry in received] == [500, 500, 200]
    assert [entry["error"] for entry in received] == [None, None, None]  # every signature verifies
    assert len({entry["headers"]["webhook-id"] for entry in received}) == 1  # one event, deduplicable
    assert len({entry["body"] for entry in received}) == 1
    event = received[-1]["event"]
    assert event["type"] == "conversion.completed" and event["data"] == final  # as GET returns it
    assert {"type", "timestamp", "data"} == set(event)
    first_gap, second_gap = (received[1]["at"] - received[0]["at"]), (received[2]["at"] - received[1]["at"])
    assert second_gap > first_gap  # exponential backoff: 0.5 s then 2 s, each +-25%

    delivery = WebhookDelivery.objects.get(conversion_id=conversion["id"])
    assert delivery.state == "delivered" and delivery.webhook_id == received[0]["headers"]["webhook-id"]
    attempts = list(delivery.attempts.order_by("started_at"))
    assert [attempt.status_code for attempt in attempts] == [500, 500, 200]
    assert [attempt.error for attempt in attempts] == ["HTTP 500", "HTTP 500", ""]
    finished_at = Conversion.objects.get(pk=conversion["id"]).finished_at
    assert all(attempt.started_at >= finished_at for attempt in attempts)  # after the job, never inside it


def test_a_receiver_that_hangs_does_not_hold_up_the_conversion(webhook_client, receiver_with):
    receiver = receiver_with(["hang"])
    conversion = submit_with_callback(webhook_client, receiver.url)
    assert wait_for_status(webhook_client, conversion["id"])["status"] == "completed"
    later = submit_with_callback(webhook_client, receiver.url)  # the pool still runs jobs while hooks hang
    assert wait_for_status(webhook_client, later["id"])["status"] == "completed"

    (first,) = attempts_of(conversion["id"], 1)
    assert first.status_code is None and first.error.startswith(f"timed out after {TIMEOUT_SECONDS:g} s")
    assert first.duration_ms >= TIMEOUT_SECONDS * 1000 * 0.9
    assert first.started_at >= Conversion.objects.get(pk=conversion["id"]).finished_at
    attempts = attempts_of(conversion["id"], 3, timeout=90)  # WEBHOOK_MAX_ATTEMPTS=3, then it gives up
    deadline = time.monotonic() + 30
    while WebhookDelivery.objects.get(conversion_id=conversion["id"]).state == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert WebhookDelivery.objects.get(conversion_id=conversion["id"]).state == "failed"
    assert len(attempts) == 3 and all(attempt.error.startswith("timed out") for attempt in attempts)


def test_the_admin_redelivers_an_event_with_the_same_webhook_id(webhook_client, receiver_with):
    receiver = receiver_with([200])
    conversion = submit_with_callback(webhook_client, receiver.url)
    wait_for_status(webhook_client, conversion["id"])
    receiver.wait_for(1)
    attempts_of(conversion["id"], 1)

    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("hooks", "hooks@example.invalid", "pw"))
    page = staff.post(
        "/admin/conversions/conversion/",
        {"action": "redeliver_webhooks", "_selected_action": [conversion["id"]]},
        follow=True,
    )
    assert "Redelivering 1 webhook event(s)." in page.content.decode()

    received = receiver.wait_for(2)
    assert received[0]["headers"]["webhook-id"] == received[1]["headers"]["webhook-id"]
    assert received[1]["error"] is None and json.loads(received[1]["body"]) == json.loads(received[0]["body"])
    attempts_of(conversion["id"], 2)
    change = staff.get(f"/admin/conversions/conversion/{conversion['id']}/change/").content.decode()
    assert received[0]["headers"]["webhook-id"] in change and "conversion.completed" in change
    assert change.count("<td>200</td>") == 2  # both attempts, with their HTTP status
