"""Django's database sessions (SESSION_ENGINE), each loaded by one written-out SELECT.

Every signed-in request loads its session; Django's store reads the row with an ORM
``.get()`` whose compiling cost about twice the query itself (bench/ ``lists``). Only
``load`` is replaced (the documented method of a session store); the row, its expiry
test, decoding, saving, cycling and deleting are Django's.
"""

from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def load(self) -> dict:
        """The session's data, or {} (and the key forgotten) when no unexpired row has
        the key: what Django's database store loads."""
        model = self.model
        with connections[router.db_for_read(model)].cursor() as cursor:
            cursor.execute(
                f'SELECT session_data FROM "{model._meta.db_table}" WHERE session_key = %s AND expire_date > %s',
                [self.session_key, timezone.now()],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return {}
        return self.decode(row[0])
