"""Refuse a request body over the upload limit while it streams in, inside daphne.

daphne (Twisted) receives a whole request body, spooled to a temporary file, before the
application sees any of it, so Django's checks come after a 2 GB upload has been read
and written to disk. Here daphne's request class answers 413 as soon as the declared
length (Content-Length) or the bytes received so far (chunked uploads) pass the limit,
and closes the connection: nothing more is read or stored.
"""

import json

from daphne.http_protocol import WebRequest

from conversions.uploads import too_large

# Room for the multipart envelope and the other form fields around the file.
MULTIPART_ALLOWANCE_BYTES = 1024 * 1024
# Many files in one body; each is still checked against the upload limit as it is stored.
BATCH_PATH = b"/api/v1/batches"


def install(max_upload_mb: int, max_batch_mb: int | None = None) -> None:
    """Limit every request body handled by daphne in this process (batches: ``max_batch_mb``)."""
    WebRequest.max_body_bytes = max_upload_mb * 1024 * 1024 + MULTIPART_ALLOWANCE_BYTES
    WebRequest.max_batch_body_bytes = max((max_batch_mb or 0) * 1024 * 1024, WebRequest.max_body_bytes)
    WebRequest.max_upload_mb = max_upload_mb
    if getattr(WebRequest, "_body_limit_installed", False):
        return
    WebRequest._body_limit_installed = True
    got_length, content_chunk, process = WebRequest.gotLength, WebRequest.handleContentChunk, WebRequest.process

    def limited_got_length(request, length):
        request.body_received, request.refused = 0, False
        if (getattr(request.channel, "_path", None) or b"").split(b"?")[0].rstrip(b"/") == BATCH_PATH:
            request.max_body_bytes = request.max_batch_body_bytes
        got_length(request, length)
        if length is not None and length > request.max_body_bytes:
            refuse(request)

    def limited_content_chunk(request, data):
        if request.refused:
            return
        request.body_received += len(data)
        if request.body_received > request.max_body_bytes:
            refuse(request)
            return
        content_chunk(request, data)

    def process_unless_refused(request):
        if not getattr(request, "refused", False):
            return process(request)

    WebRequest.gotLength = limited_got_length
    WebRequest.handleContentChunk = limited_content_chunk
    WebRequest.process = process_unless_refused


def refuse(request: WebRequest) -> None:
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
