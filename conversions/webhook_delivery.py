"""One attempt to deliver a webhook event, run by a django-q2 worker (workers.tasks.deliver_webhook).

Retry schedule (at least once): attempt 1 as soon as the conversion is final; after a
timeout, a connection error or a non-2xx answer (redirects are not followed), attempt
n + 1 after ``WEBHOOK_RETRY_BASE_SECONDS * 4 ** (n - 1)`` seconds, at most
``WEBHOOK_RETRY_MAX_DELAY_SECONDS``, times a random factor in [0.75, 1.25] (jitter, so
that the retries of many events do not hit a recovering receiver at once), until
``WEBHOOK_MAX_ATTEMPTS``. With the defaults (5 s, 6 h, 11 attempts): 5 s, 20 s, 80 s,
5 min 20 s, 21 min, 85 min, 5.7 h, then 6 h three times: the last attempt is about
25.6 hours after the event. Each attempt is recorded (WebhookAttempt: start, HTTP
status, duration, error); the delivery ends ``delivered`` or ``failed`` (an admin may
redeliver). Every attempt sends the same ``webhook-id`` and body, signed anew with its
own ``webhook-timestamp`` (receivers refuse timestamps older than 5 minutes).
"""

import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpcore
import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from conversions import sources, webhooks
from conversions.models import WebhookAttempt, WebhookDelivery

logger = logging.getLogger(__name__)
State = WebhookDelivery.State
BACKOFF_FACTOR = 4
JITTER = (0.75, 1.25)
USER_AGENT = b"dotsocr-webhooks"
# A message may arrive a little before next_attempt_at by another host's clock.
EARLY_SECONDS = 1.0


@dataclass(frozen=True)
class Outcome:
    started_at: datetime
    status_code: int | None
    duration_ms: int
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(tries: int) -> float:
    """Seconds to wait after the ``tries``-th failed attempt (1-based), jitter included."""
    nominal = min(
        settings.WEBHOOK_RETRY_BASE_SECONDS * BACKOFF_FACTOR ** (tries - 1), settings.WEBHOOK_RETRY_MAX_DELAY_SECONDS
    )
    return nominal * random.uniform(*JITTER)


def attempt_delivery(delivery_id) -> str:
    """Claim the delivery if it is pending and due, POST it once, record the attempt and
    schedule the next one or end it. Returns what happened, for the task's log line. A
    second message for the same delivery finds it claimed (not due) and does nothing."""
    now = timezone.now()
    # The claim holds the delivery past the attempt's own bound (connect, write, read).
    hold = timedelta(seconds=3 * settings.WEBHOOK_TIMEOUT_SECONDS + 30)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        state=State.PENDING,
        next_attempt_at__lte=now + timedelta(seconds=EARLY_SECONDS),
    ).update(next_attempt_at=now + hold, tries=F("tries") + 1)
    if not claimed:
        return f"webhook {delivery_id}: not due"
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    outcome = post_event(delivery)
    return record(delivery, outcome)


def record(delivery: WebhookDelivery, outcome: Outcome) -> str:
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            started_at=outcome.started_at,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error[:2000],
        )
        pending = WebhookDelivery.objects.filter(pk=delivery.pk, state=State.PENDING, tries=delivery.tries)
        if outcome.ok:
            pending.update(state=State.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None)
            result = "delivered"
        elif delivery.tries >= settings.WEBHOOK_MAX_ATTEMPTS:
            pending.update(state=State.FAILED, next_attempt_at=None)
            result = "failed: no attempts left"
        else:
            at = timezone.now() + timedelta(seconds=retry_delay(delivery.tries))
            if pending.update(next_attempt_at=at):
                transaction.on_commit(lambda: webhooks.enqueue(delivery.pk, at=at))
            result = f"retry at {at.isoformat()}"
    line = (
        f"webhook={delivery.webhook_id} conversion={delivery.conversion_id} attempt={delivery.tries} "
        f"status={outcome.status_code} ms={outcome.duration_ms} {result}"
    )
    (logger.info if outcome.ok else logger.warning)(line + (f" error={outcome.error}" if outcome.error else ""))
    return line


def signed_headers(delivery: WebhookDelivery, url: httpx.URL) -> list[tuple[bytes, bytes]]:
    moment = datetime.now(UTC)
    signature = Webhook(settings.WEBHOOK_SECRET).sign(delivery.webhook_id, moment, delivery.body)
    return [
        (b"Host", url.netloc),
        (b"User-Agent", USER_AGENT),
        (b"Content-Type", b"application/json"),
        (b"webhook-id", delivery.webhook_id.encode()),
        (b"webhook-timestamp", str(int(moment.timestamp())).encode()),
        (b"webhook-signature", signature.encode()),
    ]


def post_event(delivery: WebhookDelivery) -> Outcome:
    """POST the event once; never raises. Only the status line is read: the answer's body
    is not needed, and a receiver trickling one cannot hold the worker."""
    started_at, began = timezone.now(), time.perf_counter()

    def outcome(status_code: int | None = None, error: str = "") -> Outcome:
        return Outcome(started_at, status_code, round((time.perf_counter() - began) * 1000), error)

    if not settings.WEBHOOK_SECRET:
        return outcome(error="WEBHOOK_SECRET is not set on this worker; the event cannot be signed.")
    policy = webhooks.webhook_policy()
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
    try:
        url = sources.checked_url(delivery.url)
        pool = httpcore.ConnectionPool(
            network_backend=sources.GuardedBackend(policy), retries=0, ssl_context=httpx.create_ssl_context()
        )
        with (
            pool,
            pool.stream(
                "POST",
                str(url),
                headers=signed_headers(delivery, url),
                content=delivery.body.encode(),
                extensions={"timeout": timeouts},
            ) as response,
        ):
            status = response.status
        return outcome(status, "" if 200 <= status < 300 else f"HTTP {status}")
    except sources.SourceUnavailable as error:
        return outcome(error=str(error))
    except httpcore.TimeoutException as error:
        return outcome(error=f"timed out after {timeout:g} s ({type(error).__name__})")
    except (httpcore.NetworkError, httpcore.ProtocolError) as error:
        return outcome(error=f"{type(error).__name__}: {error or 'connection failed'}")
    except Exception as error:  # an attempt must never take the worker down
        logger.exception("webhook=%s attempt raised", delivery.webhook_id)
        return outcome(error=f"{type(error).__name__}: {error}")
