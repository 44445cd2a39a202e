"""One channel-layer subscription per group per web process, fanned out in memory.

Without it every WebSocket joins the group with a channel of its own, so an event for
a conversion ten people watch is stored, notified and read ten times by the layer (for
the PostgreSQL layer: ten rows, ten NOTIFYs, ten SELECTs in this process). With it the
layer carries each event once per web process, and the process hands it to its sockets.
This is how Phoenix.PubSub and similar hubs scale fan-out.

A hub belongs to one event loop (daphne runs one; tests may run several in turn).
"""

import asyncio
import logging
import weakref
from collections.abc import Callable

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)
Deliver = Callable[[dict], None]  # must not block: it only queues the message


class GroupHub:
    def __init__(self, layer):
        self.layer = layer
        self.subscribers: dict[str, set[Deliver]] = {}
        self.pumps: dict[str, tuple[str, asyncio.Task]] = {}
        self.lock = asyncio.Lock()

    async def subscribe(self, group: str, deliver: Deliver) -> None:
        """Deliver every message sent to ``group`` from now on (once this returns)."""
        async with self.lock:
            if group not in self.pumps:
                channel = await self.layer.new_channel(prefix="hub")
                await self.layer.group_add(group, channel)
                self.pumps[group] = (channel, asyncio.create_task(self.pump(group, channel)))
                self.subscribers[group] = set()
            self.subscribers[group].add(deliver)

    async def unsubscribe(self, group: str, deliver: Deliver) -> None:
        async with self.lock:
            subscribers = self.subscribers.get(group)
            if subscribers is None:
                return
            subscribers.discard(deliver)
            if subscribers:
                return
            del self.subscribers[group]
            channel, task = self.pumps.pop(group)
            task.cancel()
            await self.layer.group_discard(group, channel)

    async def pump(self, group: str, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # the layer reconnects; keep serving the sockets
                logger.exception("group=%s receive failed; retrying", group)
                await asyncio.sleep(0.5)
                continue
            for deliver in list(self.subscribers.get(group, ())):
                deliver(message)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupHub]" = weakref.WeakKeyDictionary()


def hub() -> GroupHub:
    """This event loop's hub (made on first use)."""
    loop = asyncio.get_running_loop()
    if loop not in _hubs:
        _hubs[loop] = GroupHub(get_channel_layer())
    return _hubs[loop]
