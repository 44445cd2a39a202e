"""The one place that turns a conversion's state change into a channel-layer message.

Events are best-effort notifications built from the committed row: a lost one never
leaves a client wrong, because every (re)connect starts from a database snapshot.
"""

import asyncio
import logging
import os
import threading

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from dotsocr_site.patches.asgiref import serving_asgi

logger = logging.getLogger(__name__)
QUEUE_GROUP = "queue"


def conversion_group(conversion_id) -> str:
    return f"conversion.{conversion_id}"


def batch_group(batch_id) -> str:
    return f"batch.{batch_id}"


def publish_after_commit(conversion_id, *, page_no: int | None = None, status_changed: bool = False) -> None:
    transaction.on_commit(lambda: publish(conversion_id, page_no=page_no, status_changed=status_changed))


def group_message(group: str, message_type: str, event: dict) -> dict:
    """A layer message for ``group``. It names its group because each web process
    receives it once on one channel and fans it out to its sockets (conversions/fanout.py)."""
    return {"type": message_type, "group": group, "event": event}


def publish(conversion_id, *, page_no: int | None = None, status_changed: bool = False) -> None:
    """Send the conversion's current state to its group (its batch's, and on a change of
    status the queue's). Never raises."""
    from conversions import events, selectors

    try:
        conversion = selectors.conversion_by_id(conversion_id)
        event = events.conversion_event(conversion, page_no=page_no)
        layer = get_channel_layer()
        send = sender_for(layer)
        group = conversion_group(conversion_id)
        send(group, group_message(group, "conversion.event", event))
        if conversion.batch_id is not None:
            in_batch = batch_group(conversion.batch_id)
            send(in_batch, group_message(in_batch, "batch.event", {**event, "batch_id": str(conversion.batch_id)}))
        if status_changed:
            queue_event = {**event, "queue": selectors.queue_counts()}
            send(QUEUE_GROUP, group_message(QUEUE_GROUP, "queue.event", queue_event))
    except Exception:  # a notification must never break the job that sends it
        logger.exception("conversion=%s progress event not sent", conversion_id)


SEND_TIMEOUT_SECONDS = 5


def sender_for(layer):
    """A blocking group_send.

    In the web process, publishing code runs on a request thread of the ASGI server,
    and async_to_sync sends on the server's own event loop, where the consumers use the
    layer too. Elsewhere (worker processes, commands) there is no such loop, and
    async_to_sync would run each call on a new one: the PostgreSQL layer's connection
    pool (one per process) is bound to the loop that opened it and its background tasks
    replace dropped connections, and the Redis layer would connect anew for every event.
    So those sends run on one long-lived loop of this process. The in-memory layer of
    unit tests belongs to the test's loop."""
    if serving_asgi() or isinstance(layer, InMemoryChannelLayer):
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
