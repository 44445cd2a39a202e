"""The PostgreSQL channel layer, hardened for best-effort progress events."""

import logging

from channels_postgres.core import PostgresChannelLayer as BasePostgresChannelLayer

logger = logging.getLogger(__name__)


class PostgresChannelLayer(BasePostgresChannelLayer):
    async def _get_message_from_channel(self, channel, queue):
        while True:
            try:
                return await super()._get_message_from_channel(channel, queue)
            except AssertionError:
                # channels_postgres asserts when a notified message is no longer in its
                # table (expired, or removed by its cleanup). Progress events are
                # best-effort, so skip it and wait for the next one.
                logger.info("channel=%s message vanished before it was read; skipped", channel)
