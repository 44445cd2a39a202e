"""The PostgreSQL channel layer, hardened for best-effort progress events and for a
database that restarts or drops connections: a subclass of channels_postgres' layer
(``CHANNEL_LAYERS`` names it, dotsocr_site/settings.py) that reaches into its internals.

Replaces, in channels_postgres:

- ``DatabaseLayer.retrieve_group_channels``: its query, copied with one condition more
  (memberships past their expiry are skipped; `LiveMembershipDatabaseLayer` says why),
  and the layer's ``django_db`` attribute, rebuilt from its constructor arguments
  (``psycopg_options``, ``db_params``, ``using``, ``logger``) to use that query;
- ``PostgresChannelLayer.listen_to_all_channels``: wrapped, restarted when its
  connection is lost;
- the private ``PostgresChannelLayer._get_message_from_channel``: wrapped, a vanished
  message skipped instead of an AssertionError;
- ``psycopg_options`` ``check``/``reset`` set for its connection pool (psycopg_pool's
  public callbacks), when not set already.

Written against channels_postgres 1.1.4 (``WRITTEN_FOR``); ``check()`` refuses another
version. Each part can go when channels_postgres does it itself: a group send that
skips expired memberships, a listener that reconnects, a read that tolerates a message
removed meanwhile (tests/test_fanout.py covers all three).
"""

import asyncio
import logging
import time
import weakref
from datetime import timedelta

import psycopg
from channels_postgres.core import PostgresChannelLayer as BasePostgresChannelLayer
from channels_postgres.db import GROUP_CHANNEL_TABLE, MESSAGE_TABLE, DatabaseLayer
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from dotsocr_site.patches import require_attributes, require_version

WRITTEN_FOR = "1.1.4"

logger = logging.getLogger(__name__)
RECONNECT_BACKOFF_SECONDS = (0.2, 0.5, 1, 2, 5)
CHECK_AFTER_IDLE_SECONDS = 1.0


def check() -> None:
    require_version(__name__, "channels_postgres", WRITTEN_FOR)
    require_attributes(__name__, BasePostgresChannelLayer, ["listen_to_all_channels", "_get_message_from_channel"])
    require_attributes(__name__, DatabaseLayer, ["retrieve_group_channels", "get_db_pool"])


def reconnect_delay(failures: int) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row to reach the layer."""
    return RECONNECT_BACKOFF_SECONDS[min(failures, len(RECONNECT_BACKOFF_SECONDS) - 1)]


class IdleConnectionCheck:
    """Pings a pooled connection on checkout only when it has been idle for a while.

    A connection that the server dropped (restart, failover) is mostly one that sat
    idle; one used a moment ago is alive, and pinging it would add a round trip to
    every event sent. If one does turn out dead, its single event is lost (events are
    best-effort) and the pool discards it on return."""

    def __init__(self):
        self.returned_at = weakref.WeakKeyDictionary()

    async def check(self, connection) -> None:
        if time.monotonic() - self.returned_at.get(connection, 0.0) > CHECK_AFTER_IDLE_SECONDS:
            await AsyncConnectionPool.check_connection(connection)

    async def reset(self, connection) -> None:
        self.returned_at[connection] = time.monotonic()


class LiveMembershipDatabaseLayer(DatabaseLayer):
    """channels_postgres' queries, except that a group's send skips memberships past
    their expiry. channels_postgres keeps them until a cleanup that only a group_discard
    schedules, so the channels of a web process that died (and never discarded them)
    would get every later message of their groups: a row and a notification each, for
    nobody. Live members renew theirs (conversions/progress/fanout.py)."""

    async def retrieve_group_channels(self, group_key: str) -> list[str]:
        query = sql.SQL("SELECT DISTINCT channel FROM {table} WHERE group_key = %s AND expire > now()").format(
            table=sql.Identifier(GROUP_CHANNEL_TABLE)
        )
        pool = await self.get_db_pool(db_params=self.db_params)
        async with pool.connection() as connection:
            cursor = await connection.execute(query, (group_key,))
            return [row[0] for row in await cursor.fetchall()]


class PostgresChannelLayer(BasePostgresChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        base = self.django_db
        self.django_db = LiveMembershipDatabaseLayer(
            base.psycopg_options, base.db_params, using=base.using, logger=base.logger
        )
        # A pooled connection the server has dropped (restart, failover) is noticed on
        # checkout and replaced, instead of failing the consumer that drew it.
        idle_check = IdleConnectionCheck()
        self.django_db.psycopg_options.setdefault("check", idle_check.check)
        self.django_db.psycopg_options.setdefault("reset", idle_check.reset)

    def group_send_now(self, messages: list[tuple[str, dict]]) -> None:
        """Send (group, message) pairs from this thread, on its Django database connection:
        one INSERT of a row per live member channel of each group (what ``group_send``
        writes, through the same table and trigger), so a worker sends an event without a
        hop to an event loop and without the layer's own pool. The layer's configuration
        is the default database's (dotsocr_site/settings.py), so the rows land in the same
        table. Run outside a transaction, as progress events are (on commit); inside one
        they would be sent only when it commits."""
        from django.db import connection
        from django.utils import timezone

        for group, _ in messages:
            assert self.require_valid_group_name(group), "Group name not valid"
        values = ", ".join(["(%s, %s::bytea, %s)"] * len(messages))
        params = []
        for order, (group, message) in enumerate(messages):
            params += [self._group_key(group), self.serialize(message), order]
        query = (
            f"INSERT INTO {connection.ops.quote_name(MESSAGE_TABLE)} (channel, message, expire) "
            f"SELECT member.channel, sent.message, %s "
            f"FROM (VALUES {values}) AS sent(group_key, message, position) "
            f"JOIN (SELECT DISTINCT group_key, channel FROM {connection.ops.quote_name(GROUP_CHANNEL_TABLE)} "
            "WHERE expire > now()) AS member ON member.group_key = sent.group_key "
            "ORDER BY sent.position, member.channel"
        )
        with connection.cursor() as cursor:
            cursor.execute(query, [timezone.now() + timedelta(seconds=self.expiry), *params])

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
                delay = reconnect_delay(failures)
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
