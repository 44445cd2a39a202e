"""Deliver: group messages to this web process's sockets, through one channel-layer
subscription per group per process, fanned out in memory. The consumers that own the
sockets are in conversions/consumers.py (``deliver_event``); the long-poll wait of the
API (conversions/waiting.py) subscribes here too.

Plain Channels gives every WebSocket its own layer channel and adds each one to its
group, so one event for a conversion watched by ten sockets crosses the layer ten times
(ten rows and notifications in PostgreSQL, ten Redis pops) and wakes ten receive loops.
With a thousand sockets that traffic, not the sockets, is what one daphne spends its
time on (bench/ws_fanout.py). Here each process keeps a single layer channel, adds it to
a group when its first local socket subscribes and discards it when its last one leaves,
and one pump task hands every message to the local subscribers' inboxes, as
Phoenix.PubSub does. Messages name their group (groups.build_group_message)
because the layer delivers them without it.

The pump is started once per event loop and never cancelled while it waits: cancelling
a receive in the middle of a read corrupts channels_redis' shared receive state.
"""

import asyncio
import logging
import weakref

from dotsocr_site.patches.channels_postgres import reconnect_delay

logger = logging.getLogger(__name__)


class FanoutHub:
    """Local subscribers of each group, behind one layer channel of this process."""

    def __init__(self, layer):
        self.layer = layer
        self.channel: str | None = None
        self.inboxes: dict[str, set[asyncio.Queue]] = {}
        self.joined: set[str] = set()  # groups the channel is a layer member of
        self.lock = asyncio.Lock()  # one group_add/group_discard at a time keeps membership exact
        self.pruning: set[asyncio.Task] = set()
        self.tasks: list[asyncio.Task] = []  # the pump and the renewal, kept referenced

    async def join(self, group: str, inbox: asyncio.Queue) -> None:
        """Deliver ``group``'s messages to ``inbox`` once this returns."""
        self.inboxes.setdefault(group, set()).add(inbox)
        async with self.lock:
            if self.channel is None:
                self.channel = await self.layer.new_channel(prefix="fanout")
                self.tasks = [
                    asyncio.create_task(self.pump(), name="fanout-pump"),
                    asyncio.create_task(self.refresh_memberships(), name="fanout-refresh"),
                ]
            if group not in self.joined:
                await self.layer.group_add(group, self.channel)
                self.joined.add(group)

    def leave(self, group: str, inbox: asyncio.Queue) -> None:
        """Stop delivering to ``inbox``; synchronous, so a cancelled consumer can call it
        on its way out. The layer membership goes with the group's last subscriber."""
        members = self.inboxes.get(group)
        if members is None or inbox not in members:
            return
        members.discard(inbox)
        if not members:
            del self.inboxes[group]
            task = asyncio.get_running_loop().create_task(self.prune(group))
            self.pruning.add(task)
            task.add_done_callback(self.pruning.discard)

    async def prune(self, group: str) -> None:
        async with self.lock:  # a join may have come back meanwhile
            if group in self.joined and not self.inboxes.get(group):
                self.joined.discard(group)
                try:
                    await self.layer.group_discard(group, self.channel)
                except Exception:  # the membership then lapses by the layer's expiry
                    logger.exception("group=%s fan-out membership not discarded", group)

    async def pump(self) -> None:
        failures = 0
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # a layer outage must not end live events for good
                delay = reconnect_delay(failures)
                logger.exception("fan-out receive failed; retrying in %ss", delay)
                failures += 1
                await asyncio.sleep(delay)
                continue
            failures = 0
            self.deliver(message)

    def deliver(self, message: dict) -> None:
        group = message.get("group")
        if group is None:
            logger.warning("layer message of type %r names no group; dropped", message.get("type"))
            return
        for inbox in tuple(self.inboxes.get(group, ())):
            inbox.put_nowait(message)

    async def refresh_memberships(self) -> None:
        """Layers with a ``group_expiry`` forget a member after it (so that a dead
        process's memberships lapse); a live process renews its own well before."""
        expiry = getattr(self.layer, "group_expiry", 0)
        if not expiry:
            return
        while True:
            await asyncio.sleep(expiry / 4)
            for group in list(self.joined):
                try:
                    await self.layer.group_add(group, self.channel)
                except Exception:
                    logger.exception("group=%s fan-out membership not renewed", group)


_hubs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[object, FanoutHub]]" = weakref.WeakKeyDictionary()


def hub_for(layer) -> FanoutHub:
    """This event loop's hub for ``layer`` (a pump belongs to the loop it runs on)."""
    per_layer = _hubs.setdefault(asyncio.get_running_loop(), {})
    if layer not in per_layer:
        per_layer[layer] = FanoutHub(layer)
    return per_layer[layer]
