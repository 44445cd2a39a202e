"""WebSocket consumers: a database snapshot on connect, then live events from the group,
the last step of progress (conversions/progress: build, send, deliver).

Close codes: 4401 without a signed-in user (unless ALLOW_ANONYMOUS) or with a bad token
(conversions/ws_auth.py); 4404 when the conversion does not exist or is not the caller's
(the same code for both, so ids do not leak). daphne drops WebSocket close reasons, so the
reason also goes out as a last JSON message ``{"type": "error", "code": 4404, "detail": ...}``.
"""

import asyncio
import logging
import weakref

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import DatabaseError

from conversions import metrics, selectors, services, ws_auth
from conversions.exceptions import NotFound
from conversions.progress import QUEUE_GROUP, batch_group, conversion_group, events, fanout
from dotsocr_site.patches.channels import HubInboxConsumer

logger = logging.getLogger(__name__)
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404
QUEUE_COUNTS_KEY = "_queue_counts"  # a queue message's counts, read once (queue_counts_for)


class AuthenticatedConsumer(HubInboxConsumer, AsyncJsonWebsocketConsumer):
    """Accepts, then refuses with 4401 a caller who may not connect; else ``connected``.

    Group messages reach it through this process's fan-out hub (conversions/progress/fanout.py)
    instead of a layer channel of its own (how: dotsocr_site/patches/channels.py)."""

    group: str | None = None

    async def connect(self):
        await self.accept(subprotocol=self.scope.get(ws_auth.ACCEPT_SUBPROTOCOL))
        metrics.websocket_opened(self)
        reason = ws_auth.refusal(self.scope)
        if reason is not None:
            await self.refuse(CLOSE_UNAUTHENTICATED, reason)
            return
        self.user = await database_sync_to_async(services.acting_user)(self.scope.get("user"))
        await self.connected()

    async def connected(self):
        raise NotImplementedError

    async def refuse(self, code: int, reason: str):
        await self.send_json({"type": "error", "code": code, "detail": reason})
        await self.close(code=code, reason=reason)

    async def subscribe(self, group: str) -> None:
        """Receive the group's messages from now on."""
        self.group = group
        await fanout.hub_for(self.channel_layer).join(group, self.inbox)

    def unsubscribe(self) -> None:
        """Called once on the way out, however the consumer ends (disconnect, close,
        cancellation)."""
        if self.group is not None:
            fanout.hub_for(self.channel_layer).leave(self.group, self.inbox)

    async def disconnect(self, code):
        metrics.websocket_closed(self)


class ConversionConsumer(AuthenticatedConsumer):
    """``/ws/v1/conversions/<id>``: native events."""

    async def connected(self):
        self.conversion_id = self.scope["url_route"]["kwargs"]["conversion_id"]
        self.last_seq = -1
        if await self.load_snapshot() is None:
            await self.refuse(CLOSE_NOT_FOUND, "Conversion not found")
            return
        # Subscribe, then read the snapshot again: no event can fall between the two.
        await self.subscribe(conversion_group(self.conversion_id))
        snapshot = await self.load_snapshot()
        if snapshot is not None:
            await self.deliver_event(snapshot)

    @database_sync_to_async
    def load_snapshot(self) -> dict | None:
        try:
            conversion = selectors.conversion_for(self.user, self.conversion_id)
        except NotFound:
            return None
        return self.initial_message(conversion)

    def initial_message(self, conversion) -> dict:
        return events.build_conversion_event(conversion)

    async def conversion_event(self, message: dict):
        await self.deliver_event(message["event"])

    async def deliver_event(self, event: dict):
        """Forward events in order; an older snapshot than one already sent is dropped."""
        if event["seq"] <= self.last_seq:
            return
        self.last_seq = event["seq"]
        await self.send_json(self.shape(event))

    def shape(self, event: dict) -> dict:
        return event


class OriginalConversionConsumer(ConversionConsumer):
    """``/ws/conversion/<id>``: the original app's messages and status strings."""

    def initial_message(self, conversion) -> dict:
        return {**events.build_original_status_record(conversion), "seq": conversion.event_seq}

    def shape(self, event: dict) -> dict:
        if "conversion_id" not in event:  # the initial status record is already shaped
            return event
        return events.build_original_event(event)


class QueueConsumer(AuthenticatedConsumer):
    """``/ws/v1/queue``: queue counts on connect, then the state changes of the caller's
    jobs (staff: every job's), each with the whole queue's counts (``queue``), read when
    the change reaches this process (after it committed), once for all its sockets."""

    async def connected(self):
        self.visible = {}  # conversion id -> may this caller see it (ownership never changes)
        await self.subscribe(QUEUE_GROUP)
        await self.send_json({"type": "queue", "queue": await database_sync_to_async(selectors.queue_counts)()})

    async def queue_event(self, message: dict):
        event = message["event"]
        if not await self.may_see(event["conversion_id"]):
            return
        if "queue" in event:  # a worker of an earlier version sent the counts itself
            await self.send_json(event)
            return
        try:
            # Shielded: this socket going away must not cancel the read the others share.
            counts = await asyncio.shield(queue_counts_for(message))
        except DatabaseError as error:  # the change still goes out; the next one has counts
            logger.warning("queue counts not read for a queue event: %s", error)
            await self.send_json(event)
            return
        await self.send_json({**event, "queue": counts})

    async def may_see(self, conversion_id: str) -> bool:
        if conversion_id not in self.visible:
            mine = selectors.conversions_for(self.user).filter(pk=conversion_id)
            self.visible[conversion_id] = await database_sync_to_async(mine.exists)()
        return self.visible[conversion_id]


def queue_counts_for(message: dict) -> "asyncio.Future[dict[str, int]]":
    """The queue's counts (``selectors.queue_counts``) for a queue message, read after it
    reached this process: once, however many of its sockets the message goes to (the
    fan-out hands each the same message), and shared with the messages around it
    (``QueueCountsReader``)."""
    if QUEUE_COUNTS_KEY not in message:
        message[QUEUE_COUNTS_KEY] = queue_counts_reader().read_after_now()
    return message[QUEUE_COUNTS_KEY]


class QueueCountsReader:
    """Reads the queue's counts for one web process, at most one read at a time.

    A message that arrives while a read runs may not take that read's counts (it began
    before the change committed): it waits for the next read, which starts when this one
    ends and serves every message that arrived meanwhile. A busy queue (hundreds of
    changes a second) costs this process one count at a time, not one per change, and
    every change still gets counts read after it."""

    def __init__(self):
        self.running: asyncio.Future | None = None
        self.next: asyncio.Future | None = None  # for the messages that came during `running`

    def read_after_now(self) -> "asyncio.Future[dict[str, int]]":
        if self.running is None:
            self.running = self.start()
            return self.running
        if self.next is None:
            self.next = asyncio.get_running_loop().create_future()
        return self.next

    def start(self) -> asyncio.Future:
        read = asyncio.ensure_future(database_sync_to_async(selectors.queue_counts)())
        read.add_done_callback(self.finished)
        return read

    def finished(self, read: asyncio.Future) -> None:
        self.running = None
        if self.next is None:
            return
        waiting, self.next = self.next, None
        self.running = self.start()
        self.running.add_done_callback(lambda again: pass_outcome(again, waiting))


def pass_outcome(source: asyncio.Future, target: asyncio.Future) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif source.exception() is not None:
        target.set_exception(source.exception())  # type: ignore[arg-type]
    else:
        target.set_result(source.result())


_readers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, QueueCountsReader]" = weakref.WeakKeyDictionary()


def queue_counts_reader() -> QueueCountsReader:
    """This event loop's reader (one per web process)."""
    return _readers.setdefault(asyncio.get_running_loop(), QueueCountsReader())


class BatchConsumer(AuthenticatedConsumer):
    """``/ws/v1/batches/<id>``: ``{"type": "batch", "batch_id", "counts", "conversions":
    [conversion events]}`` on connect, then each conversion event of the batch (with
    ``batch_id``), older than what was already sent for that conversion dropped."""

    async def connected(self):
        self.batch_id = self.scope["url_route"]["kwargs"]["batch_id"]
        self.last_seq = {}  # conversion id -> the seq last sent
        if await self.load_snapshot() is None:
            await self.refuse(CLOSE_NOT_FOUND, "Batch not found")
            return
        # Subscribe, then read the snapshot again: no event can fall between the two.
        await self.subscribe(batch_group(self.batch_id))
        snapshot = await self.load_snapshot()
        if snapshot is not None:
            self.last_seq = {event["conversion_id"]: event["seq"] for event in snapshot["conversions"]}
            await self.send_json(snapshot)

    @database_sync_to_async
    def load_snapshot(self) -> dict | None:
        try:
            batch = selectors.batch_for(self.user, self.batch_id)
        except NotFound:
            return None
        return {
            "type": "batch",
            "batch_id": str(batch.pk),
            "counts": selectors.batch_counts(batch),
            "conversions": [
                events.build_conversion_event(conversion) for conversion in selectors.batch_conversions(batch)
            ],
        }

    async def batch_event(self, message: dict):
        event = message["event"]
        if event["seq"] <= self.last_seq.get(event["conversion_id"], -1):
            return
        self.last_seq[event["conversion_id"]] = event["seq"]
        await self.send_json(event)
