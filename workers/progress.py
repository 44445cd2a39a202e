"""The one place that turns a conversion's state change into a channel-layer message.

Events are best-effort notifications built from the committed row: a lost one never
leaves a client wrong, because every (re)connect starts from a database snapshot.
"""

import asyncio
import logging
import os
import threading

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
        send = sender_for(layer)
        send(conversion_group(conversion_id), {"type": "conversion.event", "event": event})
        if status_changed:
            send(QUEUE_GROUP, {"type": "queue.event", "event": {**event, "queue": selectors.queue_counts()}})
    except Exception:  # a notification must never break the job that sends it
        logger.exception("conversion=%s progress event not sent", conversion_id)


SEND_TIMEOUT_SECONDS = 5


def sender_for(layer):
    """A blocking group_send. The PostgreSQL layer keeps one connection pool per process,
    bound to the event loop that opened it, whose background tasks replace dropped
    connections; async_to_sync runs each call on a new loop, which would leave that pool
    unable to reconnect after a database restart. So its sends run on one long-lived
    loop of this process."""
    from dotsocr_site.channel_layers import PostgresChannelLayer

    if not isinstance(layer, PostgresChannelLayer):
        return async_to_sync(layer.group_send)

    def send(group: str, message: dict) -> None:
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), publishing_loop())
        future.result(timeout=SEND_TIMEOUT_SECONDS)

    return send


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def publishing_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for channel-layer sends, on a daemon thread; made anew
    in a forked child (threads do not survive a fork)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="channel-layer-loop", daemon=True).start()
        return _loop
