"""Every core for the web tier (issue 18): WEB_CONCURRENCY daphne processes on one listening
socket (dotsocr_site/web_tier.py). Real daphne processes on the test database: both
answer, a socket held by one gets the events of requests served by the other, the
submission throttle counts across both, and /metrics sums the sockets of both."""

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
import psutil
import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from websockets.sync.client import ClientConnection, connect

from dotsocr_site import web_tier
from dotsocr_site.web_process import HEADER
from tests.live import free_port, pdf_of, start_web_tier

pytestmark = pytest.mark.acceptance
METRICS_TOKEN = "web-tier-metrics"
ATTEMPTS = 60  # new connections tried to reach a given process (the kernel picks one for each)


def served_by(response: httpx.Response) -> int:
    return int(response.headers[HEADER])


@pytest.fixture(scope="module", params=["postgres", "redis://127.0.0.1:6379/0"])
def two_processes(request, live_env, tmp_path_factory):
    """Two daphne processes on one port; yields (base URL, their pids)."""
    port = free_port()
    env = {**live_env, "CHANNEL_LAYER_URL": request.param, "METRICS_TOKEN": METRICS_TOKEN}
    webs = start_web_tier(env, port, 2, tmp_path_factory.mktemp("web-tier"))
    yield f"http://127.0.0.1:{port}", {web.process.pid for web in webs}
    for web in webs:
        web.stop()


@contextmanager
def client_served_by(base_url: str, pid: int, **headers) -> Iterator[httpx.Client]:
    """An HTTP client whose keep-alive connection is held by process ``pid``."""
    for _ in range(ATTEMPTS):
        with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
            if served_by(client.get("/health")) == pid:
                yield client
                return
    raise AssertionError(f"no connection reached process {pid} in {ATTEMPTS} tries")


def holder(socket: ClientConnection, pids: set[int]) -> int:
    """The web process that accepted this WebSocket's TCP connection."""
    local_port = socket.socket.getsockname()[1]
    for pid in pids:
        if any(c.raddr and c.raddr.port == local_port for c in psutil.Process(pid).net_connections(kind="tcp")):
            return pid
    raise AssertionError(f"no web process holds the connection from port {local_port}")


def test_two_web_processes_answer_requests_on_one_port(two_processes):
    base_url, pids = two_processes
    answered = {served_by(httpx.get(f"{base_url}/health", timeout=10)) for _ in range(ATTEMPTS)}
    assert answered == pids


def test_a_socket_on_one_process_receives_the_event_of_a_request_served_by_the_other(two_processes, transactional_db):
    base_url, pids = two_processes
    with connect(base_url.replace("http", "ws") + "/ws/v1/queue", open_timeout=10) as queue_socket:
        assert json.loads(queue_socket.recv(timeout=10))["type"] == "queue"  # subscribed
        [other] = pids - {holder(queue_socket, pids)}
        with client_served_by(base_url, other) as client:
            response = client.post("/api/v1/conversions", files={"file": ("a.pdf", pdf_of(1, "a"), "application/pdf")})
        assert response.status_code == 201, response.text
        assert served_by(response) == other
        event = json.loads(queue_socket.recv(timeout=15))
        assert (event["conversion_id"], event["status"]) == (response.json()["id"], "queued")


def test_metrics_sum_the_open_websockets_of_every_web_process(two_processes, transactional_db):
    base_url, pids = two_processes
    ws_url = base_url.replace("http", "ws") + "/ws/v1/queue"
    with ExitStack() as sockets:
        holders = []
        while set(holders) != pids and len(holders) < ATTEMPTS:
            socket = sockets.enter_context(connect(ws_url, open_timeout=10))
            socket.recv(timeout=10)  # accepted and counted
            holders.append(holder(socket, pids))
        assert set(holders) == pids
        for pid in pids:  # whichever process answers the scrape reports the total
            with client_served_by(base_url, pid, Authorization=f"Bearer {METRICS_TOKEN}") as client:
                assert queue_sockets(client.get("/metrics").text) == len(holders)


def queue_sockets(text: str) -> float:
    line = next(
        line for line in text.splitlines() if line.startswith('dotsocr_websocket_connections{consumer="QueueConsumer"}')
    )
    return float(line.split()[-1])


SUBMIT_LIMIT = 4


@pytest.fixture(scope="module")
def throttled_processes(live_env, tmp_path_factory):
    """Two daphne processes with a submission rate; yields (base URL, their pids)."""
    port = free_port()
    env = {**live_env, "SUBMIT_RATE": f"{SUBMIT_LIMIT}/hour"}
    webs = start_web_tier(env, port, 2, tmp_path_factory.mktemp("web-tier-throttled"))
    yield f"http://127.0.0.1:{port}", {web.process.pid for web in webs}
    for web in webs:
        web.stop()


def test_the_submission_throttle_counts_across_both_processes(throttled_processes, transactional_db):
    base_url, pids = throttled_processes
    user = get_user_model().objects.create_user("throttled", password="not used")
    token = Token.objects.create(user=user).key
    answers: list[tuple[int, int]] = []  # (process, status)
    refused_by = set()
    while refused_by != pids and len(answers) < ATTEMPTS:
        with httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Token {token}"}) as client:
            response = client.post("/api/v1/conversions", files={"file": ("a.pdf", pdf_of(1, "a"), "application/pdf")})
        answers.append((served_by(response), response.status_code))
        if response.status_code == 429:
            refused_by.add(served_by(response))
        time.sleep(0.05)
    assert refused_by == pids, answers
    assert [status for _, status in answers[:SUBMIT_LIMIT]] == [201] * SUBMIT_LIMIT
    assert sum(status == 201 for _, status in answers) == SUBMIT_LIMIT, answers


def test_web_concurrency_defaults_to_the_cores_at_most_eight(monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert web_tier.web_concurrency() == min(web_tier.cores(), web_tier.MAX_DEFAULT_PROCESSES)
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert web_tier.web_concurrency() == 3


def test_web_concurrency_below_one_is_refused(monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    monkeypatch.setenv("WEB_CONCURRENCY", "0")
    with pytest.raises(ImproperlyConfigured, match="WEB_CONCURRENCY"):
        web_tier.web_concurrency()


ACCEPT_PROBE = """
import socket, sys
from twisted.internet import protocol, reactor
if sys.argv[1] == "patched":
    from dotsocr_site.patches import twisted as twisted_patches
    twisted_patches.install_one_accept()
accepted = []
factory = protocol.Factory.forProtocol(protocol.Protocol)
factory.buildProtocol = lambda address: accepted.append(address) or protocol.Protocol()
port = reactor.listenTCP(0, factory, interface="127.0.0.1")
clients = [socket.create_connection(("127.0.0.1", port.getHost().port)) for _ in range(5)]
port.doRead()  # one wake-up of the reactor on the listening socket
print(len(accepted))
"""


@pytest.mark.parametrize(("mode", "accepted"), [("patched", 1), ("twisted's own", 5)])
def test_a_process_sharing_the_socket_accepts_one_connection_per_wake_up(mode, accepted):
    """So a burst of connections is spread over the processes, not taken by the first awake."""
    import subprocess
    import sys

    from tests.live import REPO

    output = subprocess.run(
        [sys.executable, "-c", ACCEPT_PROBE, mode], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert int(output.split()[-1]) == accepted
