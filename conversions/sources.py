"""Downloading a document from a user's ``source_url``, guarded against server-side request
forgery. No Django here: the caller passes the limits (services reads them from settings).

Why this shape: checking a host name and then letting an HTTP client resolve it again
leaves a gap a DNS server can use (rebinding: a public answer for the check, 127.0.0.1 for
the connection). Here every TCP connection, including each one after a redirect, goes
through ``GuardedBackend.connect_tcp``, which resolves the name once, refuses it when any
address it resolves to is not public, and connects to exactly those checked addresses.
TLS still verifies the certificate and sends SNI for the host name (httpcore takes both
from the URL, not from the address). Redirects are followed here, one hop at a time, so
each hop's URL is checked too; no proxy from the environment is used (it would connect
on our behalf to addresses we never see).
"""

import ipaddress
import socket
import time
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import IO
from urllib.parse import unquote

import httpcore
import httpx

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
CHUNK_BYTES = 64 * 1024
USER_AGENT = "dotsocr (+source_url)"


class SourceUnavailable(Exception):
    """The URL cannot be used or fetched; the message says why, fit for the user."""


class SourceTooLarge(SourceUnavailable):
    """The document at the URL is larger than the upload limit."""


@dataclass(frozen=True)
class SourcePolicy:
    """What a download may do. ``allow_hosts``: host names (as written in URLs, IP
    literals included) and networks (``10.0.0.0/8``) that may be non-public."""

    max_bytes: int
    allow_hosts: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0
    max_redirects: int = 5
    allow_setting: str = "SOURCE_URL_ALLOW_HOSTS"  # named when a host is refused (webhooks have their own)

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in {entry.lower().rstrip(".") for entry in self.allow_hosts if "/" not in entry}

    def address_allowed(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        networks = [ipaddress.ip_network(entry, strict=False) for entry in self.allow_hosts if "/" in entry]
        return any(address in network for network in networks)


@dataclass(frozen=True)
class Download:
    filename: str  # a display name from Content-Disposition or the URL's last segment
    final_url: str
    size: int


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast: not loopback, private, link-local (169.254.169.254, the
    cloud metadata address, is one), shared (100.64/10, Alibaba's metadata 100.100.100.200),
    reserved, documentation, unspecified or multicast. IPv4 inside IPv6 is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: SourcePolicy, resolve=socket.getaddrinfo):
        self.policy, self.resolve = policy, resolve

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        addresses = self.checked_addresses(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure or httpcore.ConnectError(f"{host} has no address")

    def checked_addresses(self, host: str, port: int) -> list[str]:
        """The addresses ``host`` resolves to now, all allowed, or SourceUnavailable."""
        try:
            answers = self.resolve(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise SourceUnavailable(f"The host {host} cannot be resolved ({error}).") from None
        addresses = list(dict.fromkeys(answer[4][0] for answer in answers))
        if self.policy.host_allowed(host):
            return addresses
        for text in addresses:
            address = ipaddress.ip_address(text.split("%")[0])  # drop an IPv6 zone
            if not is_public(address) and not self.policy.address_allowed(address):
                raise SourceUnavailable(
                    f"The host {host} resolves to {address}, a loopback, private, link-local or reserved address; "
                    f"such hosts are refused unless listed in {self.policy.allow_setting}."
                )
        return addresses


def checked_url(text: str) -> httpx.URL:
    """An absolute http(s) URL with a host and no credentials, or SourceUnavailable."""
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise SourceUnavailable(f"The URL is malformed: {error}.") from None
    if url.scheme not in ("http", "https"):
        raise SourceUnavailable(f"Only http and https URLs can be downloaded, not {url.scheme or 'a relative URL'}.")
    if not url.host:
        raise SourceUnavailable("The URL has no host.")
    if url.userinfo:
        raise SourceUnavailable("URLs with a user name or password are not accepted.")
    return url


def download(source_url: str, into: IO[bytes], *, policy: SourcePolicy, resolve=socket.getaddrinfo) -> Download:
    """Fetch ``source_url`` into the open binary file ``into``, following at most
    ``policy.max_redirects`` redirects. Raises SourceUnavailable (SourceTooLarge past
    ``policy.max_bytes``, declared or streamed) with a reason for the user."""
    deadline = time.monotonic() + policy.total_timeout
    url = checked_url(source_url)
    timeouts = {
        "connect": policy.connect_timeout,
        "read": policy.read_timeout,
        "write": policy.read_timeout,
        "pool": policy.connect_timeout,
    }
    with httpcore.ConnectionPool(
        network_backend=GuardedBackend(policy, resolve), retries=0, ssl_context=httpx.create_ssl_context()
    ) as pool:
        for _ in range(policy.max_redirects + 1):
            headers = [(b"Host", url.netloc), (b"User-Agent", USER_AGENT.encode()), (b"Accept", b"*/*")]
            try:
                with pool.stream("GET", str(url), headers=headers, extensions={"timeout": timeouts}) as response:
                    if response.status in REDIRECT_STATUSES:
                        url = next_hop(url, response)
                        continue
                    if not 200 <= response.status < 300:
                        raise SourceUnavailable(f"The URL answered HTTP {response.status}.")
                    size = copy_body(response, into, policy=policy, deadline=deadline)
                    return Download(filename=filename_of(url, response), final_url=str(url), size=size)
            except httpcore.TimeoutException as error:
                raise SourceUnavailable(f"The download from {url.host} timed out ({type(error).__name__}).") from None
            except httpcore.NetworkError as error:
                raise SourceUnavailable(
                    f"The download from {url.host} failed: {error or type(error).__name__}."
                ) from None
            except httpcore.ProtocolError as error:
                raise SourceUnavailable(f"{url.host} did not answer with valid HTTP: {error}.") from None
    raise SourceUnavailable(f"The URL redirected more than {policy.max_redirects} times.")


def next_hop(url: httpx.URL, response: httpcore.Response) -> httpx.URL:
    location = header(response, b"location")
    if not location:
        raise SourceUnavailable(f"The URL answered HTTP {response.status} without a Location to follow.")
    return checked_url(str(url.join(location)))


def copy_body(response: httpcore.Response, into: IO[bytes], *, policy: SourcePolicy, deadline: float) -> int:
    limit_mb = policy.max_bytes // (1024 * 1024)
    declared = header(response, b"content-length")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise SourceTooLarge(f"The document at the URL is {int(declared)} bytes, larger than the {limit_mb} MB limit.")
    size = 0
    for chunk in response.iter_stream():
        size += len(chunk)
        if size > policy.max_bytes:
            raise SourceTooLarge(f"The document at the URL is larger than the {limit_mb} MB limit.")
        if time.monotonic() > deadline:
            raise SourceUnavailable(f"The download took longer than {policy.total_timeout:g} s.")
        into.write(chunk)
    return size


def header(response: httpcore.Response, name: bytes) -> str:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return ""


def filename_of(url: httpx.URL, response: httpcore.Response) -> str:
    """Content-Disposition's file name, else the URL path's last segment, else the host."""
    disposition = header(response, b"content-disposition")
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        name = message.get_filename()
        if name:
            return name
    segment = unquote(url.path.rstrip("/").rsplit("/", 1)[-1])
    return segment or url.host


def save_to(path: Path, source_url: str, *, policy: SourcePolicy) -> Download:
    """``download`` into a new file at ``path``; the file is removed when it fails."""
    try:
        with open(path, "xb") as target:
            return download(source_url, target, policy=policy)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
