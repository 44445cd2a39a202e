"""Webhooks: a conversion's final state POSTed to its ``callback_url`` as a signed event.

The body (JSON, fixed when the state changes, the same bytes on every attempt)::

    {"type": "conversion.completed" | "conversion.failed" | "conversion.cancelled",
     "timestamp": "<ISO 8601: when the conversion reached that state>",
     "data": <the conversion exactly as GET /api/v1/conversions/<id> returns it>}

signed as the Standard Webhooks specification says (https://www.standardwebhooks.com):
``webhook-id`` (``msg_<hex>``, the same on every attempt, for deduplication),
``webhook-timestamp`` (the attempt's, Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256>`` with WEBHOOK_SECRET, made by the ``standardwebhooks`` package).

How it flows: the transition to a final state records a WebhookDelivery row in the same
transaction (``record_final_event``, called by ``services._transition``), so an event
exists exactly when the state change committed; once that transaction commits, a
django-q2 message queues the first attempt (``workers.tasks.deliver_webhook``), which a
worker runs outside any job (conversions/webhook_delivery.py: the HTTP POST, the
recorded attempts, the retry schedule). A receiver that is down never blocks or fails
a conversion. The reaper re-queues deliveries whose message was lost (``requeue_lost``).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from conversions import sources
from conversions.exceptions import InvalidRequest
from conversions.models import Conversion, WebhookDelivery

logger = logging.getLogger(__name__)
Status = Conversion.Status
EVENT_TYPES = {
    Status.COMPLETED: "conversion.completed",
    Status.FAILED: "conversion.failed",
    Status.CANCELLED: "conversion.cancelled",
}
TASK_FUNCTION = "workers.tasks.deliver_webhook"
# A pending delivery this far past its due time has lost its message (a process died
# between commit and sending it, or a worker died during the attempt): the reaper sends
# a new one. Past any attempt's own bound (conversions/webhook_delivery.py).
LOST_AFTER_SECONDS = 300
LOST_PER_SWEEP = 200


def webhook_policy() -> sources.SourcePolicy:
    """The address checks of URL sources, with WEBHOOK_ALLOW_HOSTS and no redirects."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    return sources.SourcePolicy(
        max_bytes=0,
        allow_hosts=tuple(settings.WEBHOOK_ALLOW_HOSTS),
        connect_timeout=timeout,
        read_timeout=timeout,
        total_timeout=timeout,
        max_redirects=0,
        allow_setting="WEBHOOK_ALLOW_HOSTS",
    )


def checked_callback_url(url: str | None) -> str:
    """``url`` when webhooks can be sent to it ("" for none): http(s), no credentials, a
    host that resolves now to public addresses only (or is in WEBHOOK_ALLOW_HOSTS).
    The address is checked again on every attempt (DNS may change). Raises
    InvalidRequest naming the reason; also when WEBHOOK_SECRET is not set."""
    if not url:
        return ""
    if not settings.WEBHOOK_SECRET:
        raise InvalidRequest("callback_url: webhooks are not enabled on this server (WEBHOOK_SECRET is not set).")
    try:
        parsed = sources.checked_url(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        sources.GuardedBackend(webhook_policy()).checked_addresses(parsed.host, port)
    except sources.SourceUnavailable as error:
        raise InvalidRequest(f"callback_url: {error}") from None
    return url


def event_body(conversion: Conversion, event_type: str, moment) -> str:
    """The event's JSON, its ``data`` rendered as the API's GET renders the conversion."""
    from conversions.api.serializers import ConversionSerializer

    event = {"type": event_type, "timestamp": moment.isoformat(), "data": ConversionSerializer(conversion).data}
    return JSONRenderer().render(event).decode()


def record_final_event(conversion_id, status: str) -> WebhookDelivery | None:
    """The event of a conversion that has just reached the final ``status``, if it has a
    callback_url. Call inside the transaction that made it final: the first attempt is
    queued when that transaction commits, and nothing is recorded if it rolls back."""
    conversion = Conversion.objects.select_related("document").filter(pk=conversion_id).exclude(callback_url="").first()
    if conversion is None:
        return None
    now = timezone.now()
    event_type = EVENT_TYPES[Conversion.Status(status)]
    delivery = WebhookDelivery.objects.create(
        conversion=conversion,
        event_type=event_type,
        url=conversion.callback_url,
        body=event_body(conversion, event_type, now),
        next_attempt_at=now,
    )
    transaction.on_commit(lambda: enqueue(delivery.pk))
    return delivery


def enqueue(delivery_id, *, at=None) -> None:
    """Queue an attempt of the delivery: now, or not before ``at`` (an aware datetime)."""
    if at is None:
        from django_q.tasks import async_task

        async_task(TASK_FUNCTION, str(delivery_id), task_name=f"webhook-{delivery_id}")
    else:
        from dotsocr_site.patches.django_q import enqueue_at

        enqueue_at(at, TASK_FUNCTION, str(delivery_id), task_name=f"webhook-{delivery_id}")


def redeliver(*, delivery: WebhookDelivery) -> None:
    """Send the event again now, with the same ``webhook-id`` and body, and a fresh
    retry schedule (whatever its state: delivered, failed or still retrying)."""
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            state=WebhookDelivery.State.PENDING, tries=0, next_attempt_at=timezone.now(), delivered_at=None
        )
        transaction.on_commit(lambda: enqueue(delivery.pk))


def requeue_lost(*, lost_after_seconds: float = LOST_AFTER_SECONDS) -> int:
    """Send a new message for pending deliveries overdue by ``lost_after_seconds``; the
    number sent. A spare message is harmless: an attempt claims its delivery first."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=lost_after_seconds)
    overdue = WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lt=cutoff)
    sent = 0
    for delivery_id in list(overdue.values_list("pk", flat=True)[:LOST_PER_SWEEP]):
        if overdue.filter(pk=delivery_id).update(next_attempt_at=now):
            enqueue(delivery_id)
            sent += 1
    if sent:
        logger.warning("webhook deliveries overdue: sent %s new messages", sent)
    return sent
