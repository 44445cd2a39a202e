"""source_url: documents downloaded at submit from a real loopback HTTP server, and the
downloads refused (addresses that are not public, redirects, size, time, content)."""

import http.server
import io
import socket
import threading
import time

import pytest
from rest_framework.test import APIClient

from conversions import sources
from conversions.models import Conversion, Document
from tests.conftest import FOUR_PAGES, FOUR_PAGES_TEXT
from workers import pipeline

PDF = FOUR_PAGES.read_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /paper.pdf, /redirect/<n> (n hops, then the PDF), /to-localhost (a
    redirect to the same server by another name), /big (declared), /stream-big (chunked,
    no length), /slow (no answer for 3 s), /drip (a byte every 0.2 s), /binary, /missing,
    /named (Content-Disposition)."""

    protocol_version = "HTTP/1.1"
    requests: list[str] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        route = getattr(self, "route_" + self.path.strip("/").split("/")[0].replace("-", "_").replace(".", "_"), None)
        if route is None:
            self.answer(404, b"not here")
        else:
            route()

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def route_paper_pdf(self):
        self.answer(200, PDF, [("Content-Type", "application/pdf")])

    def route_named(self):
        self.answer(200, PDF, [("Content-Disposition", 'attachment; filename="Annual report.pdf"')])

    def route_redirect(self):
        hops = int(self.path.rsplit("/", 1)[1])
        self.answer(302, headers=[("Location", f"/redirect/{hops - 1}" if hops > 1 else "/paper.pdf")])

    def route_to_localhost(self):
        self.answer(302, headers=[("Location", f"http://localhost:{self.server.server_port}/paper.pdf")])

    def route_big(self):
        self.send_response(200)
        self.send_header("Content-Length", str(5 * 1024 * 1024))
        self.end_headers()  # nothing sent: a declared length past the limit is enough

    def route_stream_big(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunk = b"%PDF-" + b"0" * (256 * 1024)
        try:
            for _ in range(20):  # 5 MB, never declared
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            return

    def route_slow(self):
        time.sleep(3)
        self.answer(200, PDF)

    def route_drip(self):
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            return

    def route_binary(self):
        self.answer(200, b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 8, [("Content-Type", "application/pdf")])

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def api(db):
    return APIClient()


@pytest.fixture
def allowed(settings):
    settings.SOURCE_URL_ALLOW_HOSTS = ["127.0.0.1"]


def submit(api, url, **fields):
    return api.post("/api/v1/conversions", {"source_url": url, **fields}, format="json")


def nothing_stored(settings):
    return (
        Document.objects.count() == 0
        and not any(settings.UPLOAD_DIR.iterdir())
        and not any(settings.DATA_DIR.joinpath("tmp").iterdir())
    )


def test_a_url_on_an_allowed_loopback_host_converts(api, server, allowed):
    response = submit(api, f"{server}/paper.pdf")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["document"]["filename"] == "paper.pdf" and body["pages_total"] == 4
    document = Document.objects.get(pk=body["document"]["id"])
    assert document.source_url == f"{server}/paper.pdf" and document.size == len(PDF)
    assert api.get(f"/api/v1/documents/{document.pk}").json()["source_url"] == f"{server}/paper.pdf"
    pipeline.run_conversion(body["id"])
    assert FOUR_PAGES_TEXT in api.get(f"/api/v1/conversions/{body['id']}/markdown").content.decode()


def test_the_file_name_comes_from_content_disposition(api, server, allowed):
    assert submit(api, f"{server}/named").json()["document"]["filename"] == "Annual report.pdf"


def test_a_loopback_address_without_the_setting_is_refused(api, server, settings):
    Handler.requests.clear()
    response = submit(api, f"{server}/paper.pdf")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "source_url: The host 127.0.0.1 resolves to 127.0.0.1, a loopback, private, link-local or reserved address; "
        "such hosts are refused unless listed in SOURCE_URL_ALLOW_HOSTS."
    )
    assert Handler.requests == [] and nothing_stored(settings)  # refused before connecting


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/a.pdf",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/a.pdf",
        "http://[::ffff:192.168.0.1]/a.pdf",
        "http://100.100.100.200/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://localhost/a.pdf",
    ],
)
def test_private_link_local_metadata_and_reserved_addresses_are_refused(api, url, settings):
    response = submit(api, url)
    assert response.status_code == 400
    assert "refused unless listed in SOURCE_URL_ALLOW_HOSTS" in response.json()["detail"]
    assert nothing_stored(settings)


def test_a_redirect_to_loopback_is_refused(api, server, allowed, settings):
    Handler.requests.clear()
    response = submit(api, f"{server}/to-localhost")
    assert response.status_code == 400
    assert "The host localhost resolves to" in response.json()["detail"]
    assert Handler.requests == ["/to-localhost"]  # the second hop never connected
    assert nothing_stored(settings)


def test_five_redirects_are_followed_and_six_are_refused(api, server, allowed, settings):
    assert submit(api, f"{server}/redirect/5").status_code == 201
    Document.objects.all().delete()
    for path in settings.UPLOAD_DIR.iterdir():
        path.unlink()
    response = submit(api, f"{server}/redirect/6")
    assert response.status_code == 400
    assert response.json()["detail"] == "source_url: The URL redirected more than 5 times."
    assert nothing_stored(settings)


def test_a_declared_length_past_the_limit_is_refused_before_reading(api, server, allowed, settings):
    settings.MAX_UPLOAD_MB = 1
    response = submit(api, f"{server}/big")
    assert response.status_code == 413
    assert response.json()["detail"] == "The document at the URL is 5242880 bytes, larger than the 1 MB limit."
    assert nothing_stored(settings)


def test_a_streamed_body_past_the_limit_is_cut_off(api, server, allowed, settings):
    settings.MAX_UPLOAD_MB = 1
    response = submit(api, f"{server}/stream-big")
    assert response.status_code == 413
    assert response.json()["detail"] == "The document at the URL is larger than the 1 MB limit."
    assert nothing_stored(settings)


def test_a_server_that_does_not_answer_times_out(api, server, allowed, settings):
    settings.SOURCE_URL_READ_TIMEOUT = 1
    started = time.monotonic()
    response = submit(api, f"{server}/slow")
    assert response.status_code == 400 and "timed out" in response.json()["detail"]
    assert time.monotonic() - started < 3  # gave up at the read timeout, not when the server answered
    assert nothing_stored(settings)


def test_a_download_that_drips_stops_at_the_total_time_limit(api, server, allowed, settings):
    settings.SOURCE_URL_TOTAL_TIMEOUT = 1
    response = submit(api, f"{server}/drip")
    assert response.status_code == 400
    assert response.json()["detail"] == "source_url: The download took longer than 1 s."
    assert nothing_stored(settings)


def test_content_that_is_not_a_document_is_refused_whatever_its_content_type(api, server, allowed, settings):
    response = submit(api, f"{server}/binary")
    assert 400 <= response.status_code < 500 and "PDF" in response.json()["detail"]
    assert nothing_stored(settings)


@pytest.mark.parametrize(
    "url,reason",
    [
        ("ftp://example.com/a.pdf", "Only http and https URLs can be downloaded, not ftp."),
        ("file:///etc/passwd", "Only http and https URLs can be downloaded, not file."),
        ("http://user:secret@example.com/a.pdf", "URLs with a user name or password are not accepted."),
        ("/relative/a.pdf", "Only http and https URLs can be downloaded, not a relative URL."),
    ],
)
def test_urls_that_are_not_http_or_carry_credentials_are_refused(api, url, reason):
    response = submit(api, url)
    assert response.status_code == 400 and response.json()["detail"] == f"source_url: {reason}"


def test_an_error_status_is_refused_with_it(api, server, allowed):
    response = submit(api, f"{server}/missing")
    assert response.status_code == 400 and response.json()["detail"] == "source_url: The URL answered HTTP 404."


def test_a_source_url_and_a_file_together_are_a_400(api, server, allowed):
    response = api.post(
        "/api/v1/conversions", {"source_url": f"{server}/paper.pdf", "file": io.BytesIO(PDF)}, format="multipart"
    )
    assert response.status_code == 400 and "exactly one of" in response.json()["detail"]


def test_the_address_connected_to_is_the_one_checked_dns_rebinding(server):
    """A name that answers with a public address when checked and 127.0.0.1 afterwards
    (what a rebinding DNS server does) never reaches the loopback server."""
    port = int(server.rsplit(":", 1)[1])
    answers = iter(["8.8.8.8"] + ["127.0.0.1"] * 10)  # a public answer first, loopback after
    calls = []

    def rebinding_resolver(host, port, type=0):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    Handler.requests.clear()
    policy = sources.SourcePolicy(max_bytes=10**7, connect_timeout=1, read_timeout=1)
    with pytest.raises(sources.SourceUnavailable):
        sources.download(
            f"http://rebind.example:{port}/paper.pdf", io.BytesIO(), policy=policy, resolve=rebinding_resolver
        )
    assert calls == ["rebind.example"]  # resolved once, and the checked answer was the one used
    assert Handler.requests == []


def test_a_batch_takes_source_urls_beside_files(api, server, allowed):
    response = api.post(
        "/api/v1/batches",
        {"source_url": [f"{server}/paper.pdf", f"{server}/named"], "file": [io.BytesIO(PDF)]},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    names = [conversion["document"]["filename"] for conversion in response.json()["conversions"]]
    assert names[1:] == ["paper.pdf", "Annual report.pdf"] and Conversion.objects.count() == 3


def test_a_failed_url_refuses_its_batch_naming_it(api, server, allowed, settings):
    response = api.post("/api/v1/batches", {"source_url": [f"{server}/paper.pdf", f"{server}/missing"]}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == f"{server}/missing: source_url: The URL answered HTTP 404."
    assert nothing_stored(settings) and Conversion.objects.count() == 0
