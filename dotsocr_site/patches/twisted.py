"""Twisted, two places: the private ``HTTPChannel._path`` read, and one accept per wake-up.

1. ``HTTPChannel._path``: the request's path before its body arrives. Replaces: nothing;
it reads ``HTTPChannel._path``, which ``HTTPChannel.lineReceived`` sets from the request
line, before the headers end and ``Request.gotLength`` runs.
Twisted gives the request its public ``path``/``uri`` only in ``requestReceived``, after
the whole body, too late for the body limit in patches/daphne.py, which needs the path
to tell a batch upload (a larger limit) from any other body.

Written against Twisted 26.10.0. It can go when daphne refuses large bodies itself, or
Twisted exposes the path to ``gotLength`` (for instance by setting ``Request.uri``
there); ``check()`` fails if ``lineReceived`` no longer sets ``_path``.

2. ``Port.doRead`` wrapped (``install_one_accept``): one accept per wake-up on a listening
socket shared by several daphne processes. With WEB_CONCURRENCY processes on one socket
(dotsocr_site/web_tier.py) every process is woken when a connection arrives, and
Twisted's ``Port.doRead`` then accepts up to ``numberAccepts`` connections in a row (100
to start, growing by 20 while the queue stays full). The first process awake takes a
whole burst: in bench/web_tier.py 15 of 16 connections opened together went to one of
two processes, which served them while the other idled. Accepting one connection per
reactor iteration lets each waiting process take its turn (nginx's ``multi_accept
off``); a process busy with requests returns to ``accept`` later, so it takes fewer.
Installed only when several processes share the socket: one process keeps Twisted's own
behaviour. It can go when Twisted's ``Port`` takes an accept limit (it has none in
26.10.0) or when the web processes get their connections some other way (SO_REUSEPORT).

Both written against Twisted 26.10.0 (``WRITTEN_FOR``).
"""

import inspect

from twisted.internet import tcp
from twisted.web.http import HTTPChannel

from dotsocr_site.patches import UnsupportedVersion, require_attributes, require_version

WRITTEN_FOR = "26.10.0"


def check() -> None:
    require_version(__name__, "Twisted", WRITTEN_FOR)
    if "self._path = " not in inspect.getsource(HTTPChannel.lineReceived):
        raise UnsupportedVersion(
            f"{__name__.replace('.', '/')}.py reads HTTPChannel._path, which HTTPChannel.lineReceived "
            "no longer sets: update the patch."
        )
    require_attributes(__name__, tcp.Port, ("doRead",))
    if "self.numberAccepts" not in inspect.getsource(tcp.Port.doRead):
        raise UnsupportedVersion(
            f"{__name__.replace('.', '/')}.py limits Port.numberAccepts, which Port.doRead no longer reads: "
            "update the patch."
        )


def request_path(channel: HTTPChannel) -> bytes:
    """The path of the request being received on ``channel``, query string included
    (``b""`` before the request line)."""
    return getattr(channel, "_path", None) or b""


def install_one_accept() -> None:
    """Accept at most one connection per wake-up of every listening port of this
    process; idempotent."""
    check()
    if getattr(tcp.Port, "_dotsocr_one_accept", False):
        return
    original_do_read = tcp.Port.doRead

    def do_read(self: tcp.Port) -> object:
        self.numberAccepts = 1  # doRead grows it again after a full batch
        return original_do_read(self)

    tcp.Port.doRead = do_read  # type: ignore[method-assign]
    tcp.Port._dotsocr_one_accept = True  # type: ignore[attr-defined]
