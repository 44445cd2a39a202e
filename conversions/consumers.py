"""WebSocket consumers: a database snapshot on connect, then live events from the group.

Close codes: 4404 when the conversion does not exist or is not the caller's (the same
code for both, so ids do not leak). daphne drops WebSocket close reasons, so the reason
also goes out as a last JSON message ``{"type": "error", "code": 4404, "detail": ...}``.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from conversions import events, metrics, selectors, services
from conversions.exceptions import NotFound
from workers.progress import QUEUE_GROUP, conversion_group

CLOSE_NOT_FOUND = 4404


class ConversionConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/v1/conversions/<id>``: native events."""

    async def connect(self):
        self.conversion_id = self.scope["url_route"]["kwargs"]["conversion_id"]
        self.last_seq = -1
        await self.accept()
        metrics.websocket_opened(self)
        if await self.load_snapshot() is None:
            await self.refuse(CLOSE_NOT_FOUND, "Conversion not found")
            return
        # Join, then read the snapshot again: no event can fall between the two.
        self.group = conversion_group(self.conversion_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        snapshot = await self.load_snapshot()
        if snapshot is not None:
            await self.send_event(snapshot)

    async def refuse(self, code: int, reason: str):
        await self.send_json({"type": "error", "code": code, "detail": reason})
        await self.close(code=code, reason=reason)

    async def disconnect(self, code):
        metrics.websocket_closed(self)
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    @database_sync_to_async
    def load_snapshot(self) -> dict | None:
        try:
            conversion = selectors.conversion_for(services.acting_user(self.scope.get("user")), self.conversion_id)
        except NotFound:
            return None
        return self.initial_message(conversion)

    def initial_message(self, conversion) -> dict:
        return events.conversion_event(conversion)

    async def conversion_event(self, message):
        await self.send_event(message["event"])

    async def send_event(self, event: dict):
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
        return {**events.original_status_record(conversion), "seq": conversion.event_seq}

    def shape(self, event: dict) -> dict:
        if "conversion_id" not in event:  # the initial status record is already shaped
            return event
        return events.original_event(event)


class QueueConsumer(AsyncJsonWebsocketConsumer):
    """``/ws/v1/queue``: queue counts on connect, then every job state change."""

    async def connect(self):
        await self.accept()
        metrics.websocket_opened(self)
        await self.channel_layer.group_add(QUEUE_GROUP, self.channel_name)
        await self.send_json({"type": "queue", "queue": await database_sync_to_async(selectors.queue_counts)()})

    async def disconnect(self, code):
        metrics.websocket_closed(self)
        await self.channel_layer.group_discard(QUEUE_GROUP, self.channel_name)

    async def queue_event(self, message):
        await self.send_json(message["event"])
