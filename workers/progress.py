"""The one place that turns a conversion's state change into a channel-layer message.

Events are best-effort notifications built from the committed row: a lost one never
leaves a client wrong, because every (re)connect starts from a database snapshot.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)
QUEUE_GROUP = "queue"


def conversion_group(conversion_id) -> str:
    return f"conversion.{conversion_id}"


def publish_after_commit(conversion_id, *, page_no: int | None = None, status_changed: bool = False) -> None:
    transaction.on_commit(lambda: publish(conversion_id, page_no=page_no, status_changed=status_changed))


def publish(conversion_id, *, page_no: int | None = None, status_changed: bool = False) -> None:
    """Send the conversion's current state to its group (and the queue's). Never raises."""
    from conversions import events, selectors

    try:
        conversion = selectors.conversion_by_id(conversion_id)
        event = events.conversion_event(conversion, page_no=page_no)
        layer = get_channel_layer()
        send = async_to_sync(layer.group_send)
        send(conversion_group(conversion_id), {"type": "conversion.event", "event": event})
        if status_changed:
            send(QUEUE_GROUP, {"type": "queue.event", "event": {**event, "queue": selectors.queue_counts()}})
    except Exception:  # a notification must never break the job that sends it
        logger.exception("conversion=%s progress event not sent", conversion_id)
