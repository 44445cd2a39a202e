"""The dots.ocr servers of one process and their in-flight budget: least outstanding
requests first, at most ``in_flight_per_server`` each, refusing servers cooled down.

Thread-safe. No Django here.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# --- servers ---------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    outstanding: int = 0
    dead_until: float = 0.0


@dataclass(frozen=True)
class ServerState:
    """A server as ``ServerPool.snapshot`` saw it."""

    url: str
    outstanding: int  # requests in flight
    dead: bool  # cooling down after a refused connection


class ServerPool:
    """The dots.ocr servers of this process: least outstanding requests first, at most
    ``in_flight_per_server`` each, servers refusing connections skipped for a cool-down."""

    def __init__(
        self,
        urls: list[str],
        *,
        in_flight_per_server: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.servers = [Server(url) for url in urls]
        self.in_flight_per_server = in_flight_per_server
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self.changed = threading.Condition()

    @contextmanager
    def lease(self) -> Iterator[Server]:
        """A server with a free slot, held for one request; blocks while none is free."""
        with self.changed:
            server = self.changed.wait_for(self.pick, timeout=None)
            assert server is not None  # without a timeout, wait_for returns a server
            server.outstanding += 1
        try:
            yield server
        finally:
            with self.changed:
                server.outstanding -= 1
                self.changed.notify_all()

    def pick(self) -> Server | None:
        now = self.clock()
        live = [server for server in self.servers if server.dead_until <= now]
        # Every server down: try the one that failed longest ago rather than wait out
        # the cool-down; the caller's backoff paces the attempts.
        candidates = live or sorted(self.servers, key=lambda server: server.dead_until)[:1]
        free = [server for server in candidates if server.outstanding < self.in_flight_per_server]
        return min(free, key=lambda server: server.outstanding, default=None)

    def mark_dead(self, server: Server) -> None:
        with self.changed:
            server.dead_until = self.clock() + self.cooldown_seconds
            self.changed.notify_all()

    def mark_alive(self, server: Server) -> None:
        with self.changed:
            server.dead_until = 0.0

    def snapshot(self) -> list[ServerState]:
        """Per server, in the order configured: its state now."""
        with self.changed:
            now = self.clock()
            return [
                ServerState(url=server.url, outstanding=server.outstanding, dead=server.dead_until > now)
                for server in self.servers
            ]
