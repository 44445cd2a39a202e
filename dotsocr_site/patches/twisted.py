"""Twisted's private ``HTTPChannel._path``: the request's path before its body arrives.

Replaces: nothing; it reads ``HTTPChannel._path``, which ``HTTPChannel.lineReceived``
sets from the request line, before the headers end and ``Request.gotLength`` runs.
Twisted gives the request its public ``path``/``uri`` only in ``requestReceived``, after
the whole body, too late for the body limit in patches/daphne.py, which needs the path
to tell a batch upload (a larger limit) from any other body.

Written against Twisted 26.10.0. It can go when daphne refuses large bodies itself, or
Twisted exposes the path to ``gotLength`` (for instance by setting ``Request.uri``
there); ``check()`` fails if ``lineReceived`` no longer sets ``_path``.
"""

import inspect

from twisted.web.http import HTTPChannel

from dotsocr_site.patches import UnsupportedVersion, require_version

WRITTEN_FOR = "26.10.0"


def check() -> None:
    require_version(__name__, "Twisted", WRITTEN_FOR)
    if "self._path = " not in inspect.getsource(HTTPChannel.lineReceived):
        raise UnsupportedVersion(
            f"{__name__.replace('.', '/')}.py reads HTTPChannel._path, which HTTPChannel.lineReceived "
            "no longer sets: update the patch."
        )


def request_path(channel: HTTPChannel) -> bytes:
    """The path of the request being received on ``channel``, query string included
    (``b""`` before the request line)."""
    return getattr(channel, "_path", None) or b""
