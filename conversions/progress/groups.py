"""Send: a conversion's event to its Channels groups, on the channel layer.

``send_state`` takes the conversion in hand (the values its write just returned);
``send_stored_state`` reads the row first. Each has an ``_after_commit`` variant, which is
what services call: a client never hears of a write that rolls back. Sends are best
effort and never raise: a lost event never leaves a client wrong, because every
(re)connect starts from a database snapshot.
"""

import asyncio
import logging
import os
import threading

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

from conversions.progress import events
from dotsocr_site.patches.asgiref import serving_asgi

logger = logging.getLogger(__name__)
QUEUE_GROUP = "queue"
SEND_TIMEOUT_SECONDS = 5


def conversion_group(conversion_id) -> str:
    return f"conversion.{conversion_id}"


def batch_group(batch_id) -> str:
    return f"batch.{batch_id}"


def build_group_message(group: str, message_type: str, event: dict) -> dict:
    """A layer message for ``group``. It names its group because each web process
    receives it once on one channel and fans it out to its sockets (fanout.py)."""
    return {"type": message_type, "group": group, "event": event}


def build_group_messages(conversion, event: dict, *, status_changed: bool) -> list[tuple[str, dict]]:
    """(group, message) pairs for ``event``: the conversion's group, its batch's (the
    event with ``batch_id``), and on a change of status the queue's. The queue's counts
    are not read here but where the message is delivered, once per web process that has
    a queue socket (consumers.QueueConsumer): a job's start and end cost no count of the
    queue, which grows with the backlog, when nobody watches the queue."""
    group = conversion_group(conversion.pk)
    messages = [(group, build_group_message(group, "conversion.event", event))]
    if conversion.batch_id is not None:
        in_batch = batch_group(conversion.batch_id)
        batch_event = {**event, "batch_id": str(conversion.batch_id)}
        messages.append((in_batch, build_group_message(in_batch, "batch.event", batch_event)))
    if status_changed:
        messages.append((QUEUE_GROUP, build_group_message(QUEUE_GROUP, "queue.event", event)))
    return messages


def send_stored_state_after_commit(conversion_id, *, page_no: int | None = None, status_changed: bool = False) -> None:
    """``send_stored_state`` once the current transaction commits."""
    transaction.on_commit(lambda: send_stored_state(conversion_id, page_no=page_no, status_changed=status_changed))


def send_stored_state(conversion_id, *, page_no: int | None = None, status_changed: bool = False) -> None:
    """Send the conversion's current state, read from the database, to its group (its
    batch's, and on a change of status the queue's). Never raises."""
    from conversions import selectors

    try:
        conversion = selectors.conversion_by_id(conversion_id)
    except Exception:  # a notification must never break the job that sends it
        logger.exception("conversion=%s progress event not sent", conversion_id)
        return
    send_state(conversion, page_no=page_no, status_changed=status_changed)


def send_state_after_commit(conversion, *, page_no: int | None = None, status_changed: bool = False) -> None:
    """``send_state`` once the transaction that wrote ``conversion``'s fields commits."""
    transaction.on_commit(lambda: send_state(conversion, page_no=page_no, status_changed=status_changed))


def send_state(conversion, *, page_no: int | None = None, status_changed: bool = False) -> None:
    """Send ``conversion`` as it is in hand (the values the caller just wrote, with the
    ``event_seq`` that write returned): no read of the row. Never raises."""
    try:
        event = events.build_conversion_event(conversion, page_no=page_no)
        send_messages(get_channel_layer(), build_group_messages(conversion, event, status_changed=status_changed))
    except Exception:  # a notification must never break the job that sends it
        logger.exception("conversion=%s progress event not sent", conversion.pk)


def send_messages(layer, messages: list[tuple[str, dict]]) -> None:
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


def sender_for(layer):
    """A blocking group_send.

    In the web process, sending code runs on a request thread of the ASGI server,
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
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), sending_loop())
        future.result(timeout=SEND_TIMEOUT_SECONDS)

    return send


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def sending_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for channel-layer sends, on a daemon thread; made anew
    in a forked child (threads do not survive a fork)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid():
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            threading.Thread(target=_loop.run_forever, name="channel-layer-loop", daemon=True).start()
        return _loop
