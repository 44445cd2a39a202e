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
    """Send the conversion's current state, read from the database, to its group (its
    batch's, and on a change of status the queue's). Never raises."""
    from conversions import selectors

    try:
        conversion = selectors.conversion_by_id(conversion_id)
    except Exception:  # a notification must never break the job that sends it
        logger.exception("conversion=%s progress event not sent", conversion_id)
        return
    publish_state(conversion, page_no=page_no, status_changed=status_changed)


def publish_state_after_commit(conversion, *, page_no: int | None = None, status_changed: bool = False) -> None:
    """``publish_state`` once the transaction that wrote ``conversion``'s fields commits."""
    transaction.on_commit(lambda: publish_state(conversion, page_no=page_no, status_changed=status_changed))


def publish_state(conversion, *, page_no: int | None = None, status_changed: bool = False) -> None:
    """Send ``conversion`` as it is in hand (the values the caller just wrote, with the
    ``event_seq`` that write returned): no read of the row. Never raises."""
    from conversions import events, selectors

    try:
        event = events.conversion_event(conversion, page_no=page_no)
        group = conversion_group(conversion.pk)
        messages = [(group, group_message(group, "conversion.event", event))]
        if conversion.batch_id is not None:
            in_batch = batch_group(conversion.batch_id)
            messages.append(
                (in_batch, group_message(in_batch, "batch.event", {**event, "batch_id": str(conversion.batch_id)}))
            )
        if status_changed:
            queue_event = {**event, "queue": selectors.queue_counts()}
            messages.append((QUEUE_GROUP, group_message(QUEUE_GROUP, "queue.event", queue_event)))
        send_all(get_channel_layer(), messages)
    except Exception:  # a notification must never break the job that sends it
        logger.exception("conversion=%s progress event not sent", conversion.pk)


def send_all(layer, messages: list[tuple[str, dict]]) -> None:
    """Send (group, message) pairs in order. A layer that can send from this thread at
    once (the PostgreSQL layer: one INSERT on this thread's database connection, see
    dotsocr_site/patches/channels_postgres.py) does so in one statement, with no hop to an event loop."""
    # Looked up on the class: the Redis pub/sub layer answers any attribute of an
    # instance through a layer of the running event loop, and there is none here.
    if getattr(type(layer), "group_send_now", None) is not None:
        layer.group_send_now(messages)
        return
    send = sender_for(layer)
    for group, message in messages:
        send(group, message)


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
