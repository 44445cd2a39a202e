"""A copy of Channels' ``AsyncConsumer.__call__`` and ``dispatch``, for the WebSocket consumers.

Replaces (in the consumers that inherit `HubInboxConsumer`, conversions/consumers.py):

- ``AsyncConsumer.__call__``: the same, except that the socket's own channel-layer
  channel (``new_channel``, and a ``receive`` on it per socket) is an in-memory inbox
  that this process's fan-out hub fills (conversions/progress/fanout.py): one layer channel per
  web process instead of one per socket. And ``unsubscribe()`` runs however the
  consumer ends.
- ``AsyncConsumer.dispatch``: the same, without ``aclose_old_connections()`` before
  every handler: that is a hop to a worker thread per message per socket, and these
  handlers reach the database only through ``database_sync_to_async``, which does it
  itself.

Written against channels 4.3.2 (``WRITTEN_FOR``); ``check()`` refuses another version.
It can go when Channels lets a consumer take its messages from a source other than its
layer channel (then subscribe through that), and skips the per-message
``close_old_connections`` for consumers that do not need it; compare ``__call__`` and
``dispatch`` of channels/consumer.py with the copies below when upgrading.
"""

import asyncio
from typing import Any

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from channels.utils import await_many_dispatch

from dotsocr_site.patches import require_attributes, require_version

WRITTEN_FOR = "4.3.2"


def check() -> None:
    require_version(__name__, "channels", WRITTEN_FOR)
    require_attributes(__name__, AsyncConsumer, ["__call__", "dispatch", "channel_layer_alias", "_sync"])


class HubInboxConsumer:
    """Put first among the bases of an ``AsyncConsumer`` subclass (async only). Messages
    for the socket are put into ``self.inbox``; ``unsubscribe()`` is called once on the
    way out."""

    channel_layer_alias: str
    inbox: "asyncio.Queue[dict[str, Any]]"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Channels' AsyncConsumer.__call__, with the socket's layer channel replaced by
        # an in-memory inbox that the hub fills.
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.inbox = asyncio.Queue()
        self.base_send = send
        try:
            await await_many_dispatch([receive, self.inbox.get], self.dispatch)
        except StopConsumer:
            pass
        finally:
            self.unsubscribe()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' AsyncConsumer.dispatch without close_old_connections (see the module).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    def unsubscribe(self) -> None:
        """Called once on the way out, however the consumer ends (disconnect, close,
        cancellation)."""
