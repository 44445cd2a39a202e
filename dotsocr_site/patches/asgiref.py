"""asgiref's ``SyncToAsync.threadlocal``: is this thread running a request of an ASGI server?

Replaces: nothing; it reads ``main_event_loop`` and ``main_event_loop_pid``, which
asgiref's ``SyncToAsync.__call__`` leaves on the thread-local of the thread it runs a
sync function in (asgiref/sync.py), to tell whether a progress event sent from this
thread can go through ``async_to_sync`` on the server's own running loop
(conversions/progress/groups.py). asgiref has no public way to ask.

Written against asgiref 3.13.0. It can go when asgiref offers a public "the event loop
this sync thread was called from" (or when progress is sent from async code only);
``check()`` fails if ``SyncToAsync`` no longer has its ``threadlocal``.
"""

import os

from asgiref.sync import SyncToAsync

from dotsocr_site.patches import require_attributes, require_version

WRITTEN_FOR = "3.13.0"


def check() -> None:
    require_version(__name__, "asgiref", WRITTEN_FOR)
    require_attributes(__name__, SyncToAsync, ["threadlocal"])


def serving_asgi() -> bool:
    """Is this thread a request thread of a running ASGI server (asgiref's sync_to_async)?
    asgiref leaves its note on a thread after the call, so the loop must still run."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return (
        getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid()
        and loop is not None
        and loop.is_running()
    )
