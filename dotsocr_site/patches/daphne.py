"""daphne's request body handling and its connection timeout sweep.

Written against daphne 4.2.3 (``WRITTEN_FOR``); ``check()`` refuses another version, or
one whose ``WebRequest`` or ``Server`` lacks what is replaced here. Installed by
dotsocr_site/asgi.py (``install``), in the web process only.

1. Request bodies over the upload limit are refused while they stream in.
   Replaces ``WebRequest.gotLength``, ``handleContentChunk`` and ``process`` (wrapped).
   Why: daphne (Twisted) receives a whole request body, spooled to a temporary file,
   before the application sees any of it, so Django's checks come after a 2 GB upload
   has been read and written to disk. Here daphne's request class answers 413 as soon as
   the declared length (Content-Length) or the bytes received so far (chunked uploads)
   pass the limit, and closes the connection: nothing more is read or stored. The path
   (batches have their own limit) is Twisted's private one (patches/twisted.py).
   Can go when daphne gets a request body size limit of its own (it has none in 4.2.3).

2. The per-connection timeout and ping checks are spread over time.
   Replaces ``Server.timeout_checker``.
   Why: daphne checks every connection every 2 seconds, in one go: timeouts, and a ping
   to each WebSocket whose last ping is older than the ping interval. With a thousand
   sockets that is a 40-50 ms stall of the event loop every 2 s (about a hundred pings
   written at once), and every progress event that arrives meanwhile waits
   (bench/ws_fanout.py: it was most of the p99). Here a tenth of a second's turn checks
   a twentieth of the connections, so each is still checked every 2 s and the pings
   spread out. Can go when daphne's sweep no longer checks every connection at once
   (run bench/ws_fanout.py without it).
"""

import json
from typing import Any

from daphne.http_protocol import WebRequest
from daphne.server import Server  # installs Twisted's asyncio reactor, as the `daphne` app does

from conversions.uploads import too_large
from dotsocr_site.patches import require_attributes, require_version
from dotsocr_site.patches.twisted import request_path

WRITTEN_FOR = "4.2.3"


def check() -> None:
    require_version(__name__, "daphne", WRITTEN_FOR)
    require_attributes(__name__, WebRequest, ["gotLength", "handleContentChunk", "process"])
    require_attributes(__name__, Server, ["timeout_checker"])


def install(max_upload_mb: int, max_batch_mb: int | None = None) -> None:
    """Both patches, for every daphne request and server of this process; idempotent."""
    check()
    install_body_limit(max_upload_mb, max_batch_mb)
    Server.timeout_checker = spread_timeout_checker


# --- 1. request body limit -----------------------------------------------------------------

# Room for the multipart envelope and the other form fields around the file.
MULTIPART_ALLOWANCE_BYTES = 1024 * 1024
# Many files in one body; each is still checked against the upload limit as it is stored.
BATCH_PATH = b"/api/v1/batches"


def install_body_limit(max_upload_mb: int, max_batch_mb: int | None = None) -> None:
    """Limit every request body handled by daphne in this process (batches: ``max_batch_mb``)."""
    WebRequest.max_body_bytes = max_upload_mb * 1024 * 1024 + MULTIPART_ALLOWANCE_BYTES
    WebRequest.max_batch_body_bytes = max((max_batch_mb or 0) * 1024 * 1024, WebRequest.max_body_bytes)
    WebRequest.max_upload_mb = max_upload_mb
    if getattr(WebRequest, "_body_limit_installed", False):
        return
    WebRequest._body_limit_installed = True
    got_length, content_chunk, process = WebRequest.gotLength, WebRequest.handleContentChunk, WebRequest.process

    def limited_got_length(request: Any, length: int | None) -> None:
        request.body_received, request.refused = 0, False
        if request_path(request.channel).split(b"?")[0].rstrip(b"/") == BATCH_PATH:
            request.max_body_bytes = request.max_batch_body_bytes
        got_length(request, length)
        if length is not None and length > request.max_body_bytes:
            refuse(request)

    def limited_content_chunk(request: Any, data: bytes) -> None:
        if request.refused:
            return
        request.body_received += len(data)
        if request.body_received > request.max_body_bytes:
            refuse(request)
            return
        content_chunk(request, data)

    def process_unless_refused(request: Any) -> Any:
        if not getattr(request, "refused", False):
            return process(request)
        return None

    WebRequest.gotLength = limited_got_length
    WebRequest.handleContentChunk = limited_content_chunk
    WebRequest.process = process_unless_refused


def refuse(request: Any) -> None:
    """Answer 413 with ``{"detail": ...}`` and close the connection."""
    request.refused = True
    if request.max_body_bytes > WebRequest.max_body_bytes:
        limit_mb = request.max_body_bytes // (1024 * 1024)
        detail = f"The batch is larger than the {limit_mb} MB limit (MAX_BATCH_UPLOAD_MB)."
    else:
        detail = too_large(request.max_upload_mb)
    body = json.dumps({"detail": detail}).encode()
    request.channel.transport.write(
        b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    request.channel.transport.loseConnection()


# --- 2. timeout checks in slices -------------------------------------------------------------

TURNS = 20
PERIOD_SECONDS = 2.0


def check_a_slice(server: Any, turn: int) -> None:
    """Check the connections whose place in the list falls on ``turn``. A connection
    that moves up when another closes may be checked twice or skipped once: timeouts
    are minutes and pings 20 s apart, so a 2 s slip does not matter."""
    for protocol in list(server.connections)[turn::TURNS]:
        protocol.check_timeouts()


def spread_timeout_checker(server: Any) -> None:
    """Replaces ``Server.timeout_checker``: one slice now, the next in PERIOD_SECONDS / TURNS."""
    from twisted.internet import reactor

    turn = getattr(server, "timeout_turn", 0)
    check_a_slice(server, turn)
    server.timeout_turn = (turn + 1) % TURNS
    # Twisted declares callLater on an interface (no self): without mypy-zope, mypy reads
    # the delay as the callable.
    reactor.callLater(PERIOD_SECONDS / TURNS, server.timeout_checker)  # type: ignore[arg-type]
