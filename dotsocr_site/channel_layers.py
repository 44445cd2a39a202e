"""The PostgreSQL channel layer, hardened for best-effort progress events and for a
database that restarts or drops connections."""

import asyncio
import logging

import psycopg
from channels_postgres.core import PostgresChannelLayer as BasePostgresChannelLayer
from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger(__name__)
LISTENER_BACKOFF_SECONDS = (0.2, 0.5, 1, 2, 5)


class PostgresChannelLayer(BasePostgresChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A pooled connection the server has dropped (restart, failover) is noticed on
        # checkout and replaced, instead of failing the consumer that drew it.
        self.django_db.psycopg_options.setdefault("check", AsyncConnectionPool.check_connection)

    async def listen_to_all_channels(self) -> None:
        """channels_postgres' LISTEN loop, restarted when its connection is lost; without
        this, a database restart silently ends live events in the web process. Each
        restart first re-reads the messages still in the table, so none sent meanwhile
        is lost."""
        failures = 0
        while True:
            try:
                await super().listen_to_all_channels()
                return  # asked to shut down
            except (psycopg.OperationalError, psycopg.InterfaceError) as error:
                delay = LISTENER_BACKOFF_SECONDS[min(failures, len(LISTENER_BACKOFF_SECONDS) - 1)]
                logger.warning("channel layer listener lost its connection (%s); reconnecting in %ss", error, delay)
                failures += 1
                await asyncio.sleep(delay)

    async def _get_message_from_channel(self, channel, queue):
        while True:
            try:
                return await super()._get_message_from_channel(channel, queue)
            except AssertionError:
                # channels_postgres asserts when a notified message is no longer in its
                # table (expired, or removed by its cleanup, or re-read after the listener
                # reconnected). Progress events are best-effort: skip it, wait for the next.
                logger.info("channel=%s message vanished before it was read; skipped", channel)
