"""django-q2's ORM broker, woken by PostgreSQL NOTIFY (conversions/notify.py) instead of
polling every few milliseconds. Set as ``Q_CLUSTER["broker_class"]``.

django-q2's pusher process loops on ``dequeue()``; the ORM broker sleeps ``poll`` seconds
whenever the queue is empty, so a job submitted to an idle cluster waited half a poll on
average, and every idle cluster queried the database ``1 / poll`` times a second. Here an
empty queue waits on a LISTEN connection instead, at most ``poll`` seconds (the fallback:
a message whose lock expired for a retry sends no notification, and a lost listener
connection must not stop the queue). The wait returns as soon as a message is committed.
"""

import logging
import os
import time
from datetime import timedelta

import psycopg
from django.db import InterfaceError, OperationalError, connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from conversions import notify

logger = logging.getLogger(__name__)
WARNING_INTERVAL_SECONDS = 30


class NotifiedOrmBroker(ORM):
    """The ORM broker; an empty ``dequeue`` waits for a NOTIFY (up to ``Conf.POLL`` s)."""

    _listener: psycopg.Connection | None = None
    _listener_pid: int | None = None
    _warned_at: dict[str, float] = {}  # message -> time.monotonic() it was last logged

    def _warn(self, message: str, *args) -> None:
        """Log a warning once per WARNING_INTERVAL_SECONDS: while the database is down the
        pusher polls four times a second, and each poll would say the same."""
        now = time.monotonic()
        if now - self._warned_at.get(message, -WARNING_INTERVAL_SECONDS) >= WARNING_INTERVAL_SECONDS:
            self._warned_at[message] = now
            logger.warning(message, *args)

    def dequeue(self):
        self._drain()  # notifications of messages this query is about to see anyway
        messages = self.take_messages(Conf.BULK)
        if messages:
            return messages
        self.wait_for_message(Conf.POLL)
        return None

    def take_messages(self, count: int) -> list[tuple[int, str]]:
        """Up to ``count`` messages whose lock has passed, oldest first, as (id, payload),
        each locked for ``Conf.RETRY`` seconds, in one statement: django-q2's ORM broker
        checks its connection (a SELECT 1), reads them, then locks each with an UPDATE of
        its own (three round trips for one message). SKIP LOCKED passes over a message
        another cluster is taking at this moment, as django-q2's compare of the old lock
        value did. [] when the database cannot be reached (the connection is dropped,
        and the next call makes a new one)."""
        connection = connections[Conf.ORM]
        quote = connection.ops.quote_name
        table = quote(OrmQ._meta.db_table)
        now = timezone.now()
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET {quote('lock')} = %s WHERE id IN (SELECT id FROM {table} "
                    f"WHERE {quote('key')} = %s AND {quote('lock')} < %s ORDER BY id LIMIT %s "
                    "FOR UPDATE SKIP LOCKED) RETURNING id, payload",
                    [now + timedelta(seconds=Conf.RETRY), self.list_key, now, count],
                )
                return sorted(cursor.fetchall())
        except (OperationalError, InterfaceError) as error:
            # The database restarted or dropped us: the next call connects anew. (django-q2's
            # pusher would sleep 10 s and end on an exception.)
            self._warn("task messages not taken (%s); reconnecting", error)
            connection.close()
            return []

    def acknowledge(self, task_id) -> None:
        """Delete a finished task's message. django-q2 checks its connection first
        (``get_connection``: a SELECT 1 before each message, with CONN_HEALTH_CHECKS);
        here a dropped connection is closed and the DELETE tried once more on a new one
        (a message that stays is delivered again after its lock: a spare wake-up)."""
        connection = connections[Conf.ORM]
        try:
            OrmQ.objects.using(Conf.ORM).filter(pk=task_id).delete()
        except (OperationalError, InterfaceError) as error:
            logger.warning("task message %s not acknowledged (%s); reconnecting", task_id, error)
            connection.close()
            OrmQ.objects.using(Conf.ORM).filter(pk=task_id).delete()

    def wait_for_message(self, timeout: float) -> bool:
        """Block until a message is committed or ``timeout`` s pass; True when notified."""
        listener = self._listening()
        if listener is None:
            time.sleep(timeout)  # no listener: the plain poll
            return False
        try:
            woken = any(True for _ in listener.notifies(timeout=timeout, stop_after=1))
        except psycopg.Error as error:
            self._warn("task message listener lost (%s); polling until it is back", error)
            self._close_listener()
            return False
        self._drain()
        return woken

    def _drain(self) -> int:
        """Consume the notifications already received, without blocking; how many."""
        listener = self._listener if self._listener_pid == os.getpid() else None
        if listener is None:
            return 0
        try:
            return sum(1 for _ in listener.notifies(timeout=0))
        except psycopg.Error:
            self._close_listener()
            return 0

    def _listening(self) -> psycopg.Connection | None:
        """This process's LISTEN connection, opened on first use (django-q2 forks the
        pusher from the process that made the broker, and a connection does not survive
        a fork); None while the database cannot be reached."""
        if self._listener is not None and self._listener_pid == os.getpid() and not self._listener.closed:
            return self._listener
        self._listener = None
        try:
            params = connections[Conf.ORM].get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            params.pop("server_side_binding", None)
            listener = psycopg.connect(**params, autocommit=True)
            listener.execute(f"LISTEN {notify.CHANNEL}")
        except psycopg.Error as error:
            self._warn("cannot listen for task messages (%s); polling", error)
            return None
        self._listener, self._listener_pid = listener, os.getpid()
        return listener

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()
            except psycopg.Error:
                pass
