"""A body over MAX_UPLOAD_MB is refused by daphne while it streams in: the 413 comes
before the body is read, the connection closes, and the server's memory and disk stay
flat. Real daphne, raw sockets (an HTTP client would insist on sending it all)."""

import json
import socket

import psutil
import pytest

from tests.conftest import FOUR_PAGES
from tests.live import free_port, start_web

pytestmark = pytest.mark.acceptance
LIMIT_MB = 5
TWO_GB = 2 * 1024**3


@pytest.fixture(scope="module")
def small_limit_web(live_env, tmp_path_factory):
    port = free_port()
    web = start_web({**live_env, "MAX_UPLOAD_MB": str(LIMIT_MB)}, port, tmp_path_factory.mktemp("limit-web"))
    yield port, psutil.Process(web.process.pid)
    web.stop()


def request_head(port: int, length_header: str) -> bytes:
    return (
        f"POST /api/v1/conversions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary=xyz\r\n{length_header}\r\n\r\n"
    ).encode()


def read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    sock.settimeout(10)
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def server_footprint(daphne: psutil.Process) -> int:
    """Resident memory of daphne and its children."""
    return sum(process.memory_info().rss for process in [daphne, *daphne.children(recursive=True)])


def test_a_declared_2_gb_body_is_refused_before_it_is_sent(small_limit_web, transactional_db):
    port, _ = small_limit_web
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_head(port, f"Content-Length: {TWO_GB}"))
        status, body = read_response(sock)  # not one byte of the body was sent
    assert status == 413
    assert body == {"detail": f"File is larger than the {LIMIT_MB} MB limit."}


def test_a_chunked_2_gb_stream_is_cut_off_near_the_limit(small_limit_web, transactional_db):
    port, daphne = small_limit_web
    before = server_footprint(daphne)
    chunk = b"x" * (1024 * 1024)
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_head(port, "Transfer-Encoding: chunked"))
        try:
            while sent < TWO_GB:
                sock.sendall(framed)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, body = read_response(sock)
    assert status == 413 and "limit" in body["detail"]
    assert sent < 100 * 1024 * 1024  # the server stopped reading near 5 MB, not at 2 GB
    assert server_footprint(daphne) - before < 50 * 1024 * 1024


def test_uploads_within_the_limit_still_work(small_limit_web, transactional_db):
    import httpx

    port, _ = small_limit_web
    response = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/conversions",
        timeout=30,
        files={"file": ("ok.pdf", FOUR_PAGES.read_bytes(), "application/pdf")},
    )
    assert response.status_code == 201, response.text
