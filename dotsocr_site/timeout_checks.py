"""Spread daphne's per-connection timeout and ping checks over time.

daphne checks every connection every 2 seconds, in one go: timeouts, and a ping to each
WebSocket whose last ping is older than the ping interval. With a thousand sockets that
is a 40-50 ms stall of the event loop every 2 s (about a hundred pings written at once),
and every progress event that arrives meanwhile waits (bench/ws_fanout.py: it was most
of the p99). Here a tenth of a second's turn checks a twentieth of the connections, so
each is still checked every 2 s and the pings spread out.
"""

from daphne.server import Server
from twisted.internet import reactor

TURNS = 20
PERIOD_SECONDS = 2.0


def check_a_slice(server: Server, turn: int) -> None:
    """Check the connections whose place in the list falls on ``turn``. A connection
    that moves up when another closes may be checked twice or skipped once: timeouts
    are minutes and pings 20 s apart, so a 2 s slip does not matter."""
    for protocol in list(server.connections)[turn::TURNS]:
        protocol.check_timeouts()


def spread_timeout_checker(server: Server) -> None:
    turn = getattr(server, "timeout_turn", 0)
    check_a_slice(server, turn)
    server.timeout_turn = (turn + 1) % TURNS
    reactor.callLater(PERIOD_SECONDS / TURNS, server.timeout_checker)


def install() -> None:
    """For every daphne Server of this process (it schedules its checker when it runs)."""
    Server.timeout_checker = spread_timeout_checker
