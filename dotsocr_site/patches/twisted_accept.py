"""One accept per wake-up on a listening socket shared by several daphne processes.
Written against Twisted 26.10.0 (``TWISTED_VERSION``); ``install()`` refuses any other
version, since it sets ``twisted.internet.tcp.Port.numberAccepts``, an attribute of
Twisted's own accept loop.

Why: with WEB_CONCURRENCY processes on one socket (dotsocr_site/web_tier.py) every
process is woken when a connection arrives, and Twisted's ``Port.doRead`` then accepts
up to ``numberAccepts`` connections in a row (100 to start, growing by 20 while the
queue stays full). The first process awake takes a whole burst: in bench/web_tier.py 15
of 16 connections opened together went to one of two processes, which served them while
the other idled. Accepting one connection per reactor iteration lets each waiting
process take its turn (nginx's ``multi_accept off``); a process busy with requests
returns to ``accept`` later, so it takes fewer. Installed only when several processes
share the socket: one process keeps Twisted's own behaviour.
"""

from importlib.metadata import version

from dotsocr_site.patches import UnsupportedVersion

TWISTED_VERSION = "26.10.0"


def check_version() -> None:
    installed = version("twisted")
    if installed != TWISTED_VERSION:
        raise UnsupportedVersion(
            f"dotsocr_site/patches/twisted_accept.py was written for Twisted {TWISTED_VERSION}; "
            f"{installed} is installed: check Port.doRead's accept loop and update the patch."
        )


def install() -> None:
    """Accept at most one connection per wake-up of every listening port of this
    process; idempotent."""
    check_version()
    from twisted.internet import tcp

    if getattr(tcp.Port, "_dotsocr_one_accept", False):
        return
    original_do_read = tcp.Port.doRead

    def do_read(self):
        self.numberAccepts = 1  # doRead grows it again after a full batch
        return original_do_read(self)

    tcp.Port.doRead = do_read  # type: ignore[method-assign]
    tcp.Port._dotsocr_one_accept = True  # type: ignore[attr-defined]
